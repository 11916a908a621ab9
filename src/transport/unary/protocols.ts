/**
 * The three protocols' unary wire formats, for the fast path: how a request names its protocol, where its
 * timeout is, how its body holds the message, and how success and errors are written back. Only the plain
 * cases are taken (no compression, no gRPC-web text, no Connect GET); `detect` returns undefined for
 * anything else and connect-node's adapter serves it.
 */
import {
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { strictUtf8 } from "../../rpc/strict-utf8.ts";
import { connectErrorFor } from "../../rpc/wire-error.ts";

/** A response ready for the wire: HTTP status, headers, body, and HTTP trailers (gRPC only). */
export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
  trailers: Record<string, string> | undefined;
}

/** One unary protocol variant. */
export interface UnaryProtocol {
  readonly name: "grpc" | "grpc-web" | "connect";
  /** The request timeout in ms, or a ConnectError for a malformed header. */
  timeout(header: (name: string) => string | undefined): number | undefined | ConnectError;
  /** The request message from the whole body. */
  decode<I extends DescMessage>(desc: I, body: Buffer, maxBytes: number): MessageShape<I> | ConnectError;
  /** The wire form of a result. `header`/`trailer` are what interceptors and the handler set. */
  success<O extends DescMessage>(desc: O, message: MessageShape<O>, header: Headers, trailer: Headers): WireResponse;
  failure(err: ConnectError, header: Headers): WireResponse;
}

const maxTimeout = Number.MAX_SAFE_INTEGER;
const undecodable = () =>
  connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "the request message could not be decoded");
const tooLarge = (n: number, max: number) =>
  connectErrorFor("RESOURCE_EXHAUSTED", Code.ResourceExhausted, `message size ${n} is larger than the limit ${max}`);

export function toObject(h: Headers, into: Record<string, string> = {}, prefix = ""): Record<string, string> {
  h.forEach((v, k) => {
    into[prefix + k] = v;
  });
  return into;
}

/**
 * grpc-message as the gRPC spec encodes it: printable ASCII except "%" as is, everything else as UTF-8
 * percent-escapes. (connect's encodeURIComponent also escapes ":" and ";", which grpc-js then shows raw.)
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

export function frame(flag: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + data.length);
  out[0] = flag;
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

/** The single length-prefixed, uncompressed message of a gRPC or gRPC-web unary request. */
export function unframe<I extends DescMessage>(desc: I, body: Buffer, max: number): MessageShape<I> | ConnectError {
  if (body.length < 5)
    return connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "a unary request needs exactly one message");
  const len = body.readUInt32BE(1);
  if (len > max) return tooLarge(len, max);
  if (body.length !== 5 + len || body[0] !== 0) {
    return connectErrorFor(
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a unary request needs exactly one uncompressed message",
    );
  }
  try {
    return fromBinary(desc, body.subarray(5));
  } catch {
    return undecodable();
  }
}

export function grpcTimeout(header: (name: string) => string | undefined) {
  const t = parseTimeout(header("grpc-timeout") ?? null, maxTimeout);
  return t.error ?? t.timeoutMs;
}

/** gRPC over HTTP/2. */
export const grpc: UnaryProtocol = {
  name: "grpc",
  timeout: grpcTimeout,
  decode: unframe,
  success(desc, message, header, trailer) {
    return {
      status: 200,
      headers: toObject(header, { "content-type": "application/grpc" }),
      body: frame(0, toBinary(desc, message)),
      trailers: toObject(trailer, { "grpc-status": "0" }),
    };
  },
  failure(err, header) {
    // A trailers-only response: the status travels in the headers.
    return {
      status: 200,
      headers: toObject(grpcStatusHeaders(err, new Headers(header)), { "content-type": "application/grpc" }),
      body: undefined,
      trailers: undefined,
    };
  },
};

/** The gRPC-web trailer frame (flag 0x80) holding `trailer` as HTTP/1-style header lines. */
export function grpcWebTrailers(trailer: Headers): Buffer {
  let lines = "";
  trailer.forEach((v, k) => {
    lines += `${k}: ${v}\r\n`;
  });
  return frame(0x80, Buffer.from(lines));
}

/** gRPC-web, binary. */
export const grpcWeb: UnaryProtocol = {
  name: "grpc-web",
  timeout: grpcTimeout,
  decode: unframe,
  success(desc, message, header, trailer) {
    trailer.set("grpc-status", "0");
    const data = frame(0, toBinary(desc, message));
    const trailers = grpcWebTrailers(trailer);
    return {
      status: 200,
      headers: toObject(header, { "content-type": "application/grpc-web+proto" }),
      body: Buffer.concat([data, trailers]),
      trailers: undefined,
    };
  },
  failure(err, header) {
    const trailers = grpcWebTrailers(grpcStatusHeaders(err, new Headers()));
    return {
      status: 200,
      headers: toObject(header, { "content-type": "application/grpc-web+proto" }),
      body: trailers,
      trailers: undefined,
    };
  },
};

export function connectTimeout(header: (name: string) => string | undefined) {
  const raw = header("connect-timeout-ms");
  if (raw === undefined) return undefined;
  if (!/^\d{1,10}$/.test(raw))
    return new ConnectError(`protocol error: invalid connect timeout value: ${raw}`, Code.InvalidArgument);
  return Number(raw);
}

function connectUnary(json: boolean): UnaryProtocol {
  const type = json ? "application/json" : "application/proto";
  return {
    name: "connect",
    timeout: connectTimeout,
    decode(desc, body, max) {
      if (body.length > max) return tooLarge(body.length, max);
      try {
        return json
          ? fromJson(desc, JSON.parse(strictUtf8.decode(body)) as JsonValue, { ignoreUnknownFields: true })
          : fromBinary(desc, body);
      } catch {
        return undecodable();
      }
    },
    success(desc, message, header, trailer) {
      const body = json ? Buffer.from(JSON.stringify(toJson(desc, message))) : toBinary(desc, message);
      return {
        status: 200,
        headers: toObject(trailer, toObject(header, { "content-type": type }), "trailer-"),
        body,
        trailers: undefined,
      };
    },
    failure(err, header) {
      const headers = toObject(header, { "content-type": "application/json" });
      err.metadata.forEach((v, k) => {
        headers[k] = v;
      });
      return { status: codeToHttpStatus(err.code), headers, body: errorToJsonBytes(err, {}), trailers: undefined };
    },
  };
}

const connectProto = connectUnary(false);
/** Connect unary with JSON (also how Connect reports errors, whatever the request's format). */
export const connectJson = connectUnary(true);

/**
 * The protocol of a request the fast path can serve, or undefined. `h2` says whether it came over HTTP/2
 * (gRPC needs it).
 */
export function detect(
  method: string | undefined,
  header: (name: string) => string | undefined,
  h2: boolean,
): UnaryProtocol | undefined {
  if (method !== "POST") return undefined;
  const type = header("content-type");
  switch (type) {
    case "application/grpc":
    case "application/grpc+proto":
      return h2 && identity(header("grpc-encoding")) ? grpc : undefined;
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return identity(header("grpc-encoding")) ? grpcWeb : undefined;
    case "application/proto":
      return identity(header("content-encoding")) ? connectProto : undefined;
    case "application/json":
    case "application/json; charset=utf-8":
      return identity(header("content-encoding")) ? connectJson : undefined;
    default:
      return undefined;
  }
}

/** True for no content coding (absent or `identity`). */
export function identity(encoding: string | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}
