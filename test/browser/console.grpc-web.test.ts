/** The console in Chromium over gRPC-web, the default transport (see console-suite.ts). */
import { describeConsole } from "./console-suite.ts";

describeConsole("grpc-web");
