/**
 * gRPC-web: gRPC's messages and status, over HTTP/1.1 or HTTP/2 without HTTP trailers. The trailers travel
 * as the body's last envelope (flag 0x80), which browsers can read.
 */
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import { frame, rewriteEnvelopes, TRAILER } from "./envelope.ts";
import { grpcStatusHeaders, grpcTimeout, normaliseStatus, withGrpcStatus } from "./grpc.ts";
import { identity, single, toObject } from "./headers.ts";
import { decodeEnveloped, encodeEnveloped } from "./messages.ts";
import type { Protocol, UnaryWire } from "./protocol.ts";

/** `trailer` as HTTP/1-style header lines. */
function trailerLines(trailer: Headers): Buffer {
  let lines = "";
  trailer.forEach((v, k) => {
    lines += `${k}: ${v}\r\n`;
  });
  return Buffer.from(lines);
}

/** The trailer envelope that ends every gRPC-web response. */
function trailerFrame(trailer: Headers): Buffer {
  return frame(TRAILER, trailerLines(trailer));
}

const contentType = "application/grpc-web+proto";

const unary: UnaryWire = {
  decode: decodeEnveloped,
  success(desc, message, header, trailer) {
    trailer.set("grpc-status", "0");
    return {
      status: 200,
      headers: toObject(header, { "content-type": contentType }),
      body: Buffer.concat([encodeEnveloped(desc, message), trailerFrame(trailer)]),
      trailers: undefined,
    };
  },
  failure(err, header) {
    return {
      status: 200,
      headers: toObject(header, { "content-type": contentType }),
      body: trailerFrame(grpcStatusHeaders(err, new Headers())),
      trailers: undefined,
    };
  },
};

export const grpcWeb: Protocol = {
  name: "grpc-web",
  contentTypes: ["application/grpc-web", "application/grpc-web+proto"],
  plain: (headers) => identity(single(headers, "grpc-encoding")),
  enveloped: (type) => !type.startsWith("application/grpc-web-text"),
  timeout: grpcTimeout,
  unary,
  stream: {
    contentType,
    decode: decodeEnveloped,
    httpTrailers: false,
    end: (err, trailer) => ({ body: trailerFrame(withGrpcStatus(err, trailer)) }),
  },
  unimplemented: (err) => unary.failure(err, new Headers()),
  normaliseErrors(res: UniversalServerResponse) {
    if (!res.body) return res;
    return {
      ...res,
      body: rewriteEnvelopes(res.body, TRAILER, (payload) => {
        const trailer = trailerParse(payload);
        return normaliseStatus(trailer) ? trailerLines(trailer) : undefined;
      }),
    };
  },
};
