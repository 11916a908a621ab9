/**
 * The one place that tells the protocols apart, from a request's content type (and, for the own paths,
 * its method, content coding and HTTP version). The drivers, the edge-error rewrite, the UNIMPLEMENTED
 * answer and the metrics, log and trace labels all ask here. It is not in protocol.ts because the
 * protocols import that file's types, and imports must not go round in a cycle (.dependency-cruiser.cjs).
 */
import type { IncomingHttpHeaders } from "node:http";
import { connectJson, connectProto, connectStream } from "./connect.ts";
import { grpc } from "./grpc.ts";
import { grpcWeb } from "./grpc-web.ts";
import type { Protocol, ProtocolName, StreamProtocol, UnaryProtocol } from "./protocol.ts";

/**
 * The protocol a content type names. Anything that is not gRPC, gRPC-web or Connect streaming is Connect
 * unary (GET has no content type), which reports errors in JSON whatever the request's format.
 */
export function protocolFor(contentType: string | null | undefined): Protocol {
  if (contentType) {
    if (contentType.startsWith("application/grpc-web")) return grpcWeb;
    if (contentType.startsWith("application/grpc")) return grpc;
    if (contentType.startsWith("application/connect+")) return connectStream;
    if (contentType === "application/proto") return connectProto;
  }
  return connectJson;
}

/** The protocol's name, for metrics, log and trace labels. */
export function protocolOf(contentType: string | null | undefined): ProtocolName {
  return protocolFor(contentType).name;
}

/**
 * The protocol of a request the own paths can serve, or undefined for one that connect-node serves
 * (compression, gRPC-web text, Connect GET, JSON streams, gRPC over HTTP/1.1).
 */
export function detect(method: string | undefined, headers: IncomingHttpHeaders, h2: boolean): Protocol | undefined {
  if (method !== "POST") return undefined;
  const type = headers["content-type"];
  const protocol = protocolFor(type);
  return type !== undefined && protocol.contentTypes.includes(type) && protocol.plain(headers, h2)
    ? protocol
    : undefined;
}

export function servesUnary(protocol: Protocol | undefined): protocol is UnaryProtocol {
  return protocol?.unary !== undefined;
}

export function servesStreams(protocol: Protocol | undefined): protocol is StreamProtocol {
  return protocol?.stream !== undefined;
}
