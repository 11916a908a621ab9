/** A grpc.health.v1 client over gRPC (HTTP/2), for tests that follow the service's health. */
import { createClient } from "@connectrpc/connect";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { transport } from "./clients.ts";

/** The health client of a server. */
export function healthClient(baseUrl: string) {
  return createClient(Health, transport(baseUrl, "grpc"));
}
