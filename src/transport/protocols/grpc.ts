/**
 * gRPC over HTTP/2: enveloped messages, the status in HTTP trailers (or in the headers alone when a call
 * fails before its first message: trailers-only). The status-trailer helpers are shared with gRPC-web,
 * which differs only in how the trailers travel.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { ConnectError } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { findTrailerError, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { normalise } from "../../rpc/wire-error.ts";
import { identity, single, toObject } from "./headers.ts";
import { decodeEnveloped, encodeEnveloped } from "./messages.ts";
import type { Protocol, UnaryWire } from "./protocol.ts";

const maxTimeout = Number.MAX_SAFE_INTEGER;

/** The `grpc-timeout` deadline (gRPC and gRPC-web). */
export function grpcTimeout(headers: IncomingHttpHeaders): number | undefined | ConnectError {
  const t = parseTimeout(single(headers, "grpc-timeout") ?? null, maxTimeout);
  return t.error ?? t.timeoutMs;
}

/**
 * The status of `err` into `into`, grpc-message as the gRPC spec encodes it: printable ASCII except "%" as
 * is, everything else as UTF-8 percent-escapes. (connect's encodeURIComponent also escapes ":" and ";",
 * which grpc-js then shows raw.)
 */
export function grpcStatusHeaders(err: ConnectError, into: Headers): Headers {
  const h = setTrailerStatus(into, err);
  let message = "";
  for (const byte of Buffer.from(err.rawMessage)) {
    message +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  h.set("grpc-message", message);
  return h;
}

/** The trailers that end a call: `err`'s status, or OK. */
export function withGrpcStatus(err: ConnectError | undefined, trailer: Headers): Headers {
  if (err) grpcStatusHeaders(err, trailer);
  else trailer.set("grpc-status", "0");
  return trailer;
}

/**
 * Replaces, in place, an error status connect-node wrote that does not meet the contract (see
 * Protocol.normaliseErrors); true when it did. The new status is written as connect writes the rest of
 * that response.
 */
export function normaliseStatus(trailer: Headers): boolean {
  const err = findTrailerError(trailer);
  const fixed = err && normalise(err);
  if (!fixed) return false;
  for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(h);
  setTrailerStatus(trailer, fixed);
  return true;
}

/** The body unchanged; once it has been written, the trailers it ends with are normalised. */
async function* thenNormalise(body: AsyncIterable<Uint8Array>, trailer: Headers): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) yield chunk;
  normaliseStatus(trailer);
}

const contentType = "application/grpc";

const unary: UnaryWire = {
  decode: decodeEnveloped,
  success(desc, message, header, trailer) {
    return {
      status: 200,
      headers: toObject(header, { "content-type": contentType }),
      body: encodeEnveloped(desc, message),
      trailers: toObject(trailer, { "grpc-status": "0" }),
    };
  },
  failure(err, header) {
    // Trailers-only: the status travels in the headers.
    return {
      status: 200,
      headers: toObject(grpcStatusHeaders(err, new Headers(header)), { "content-type": contentType }),
      body: undefined,
      trailers: undefined,
    };
  },
};

export const grpc: Protocol = {
  name: "grpc",
  contentTypes: ["application/grpc", "application/grpc+proto"],
  plain: (headers, h2) => h2 && identity(single(headers, "grpc-encoding")),
  enveloped: () => true,
  timeout: grpcTimeout,
  unary,
  stream: {
    contentType,
    decode: decodeEnveloped,
    httpTrailers: true,
    end: (err, trailer) => ({ trailers: toObject(withGrpcStatus(err, trailer)) }),
  },
  unimplemented: (err) => unary.failure(err, new Headers()),
  normaliseErrors(res: UniversalServerResponse) {
    const trailer = res.trailer;
    if (!trailer || !res.body) return res;
    return { ...res, body: thenNormalise(res.body, trailer) };
  },
};
