/** The console in Chromium over the Connect protocol, chosen with ?transport=connect (see console-suite.ts). */
import { describeConsole } from "./console-suite.ts";

describeConsole("connect");
