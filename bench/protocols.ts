/**
 * The wire forms of one GetUser call in each protocol the benchmark loads: HTTP version, headers and request
 * body (the load generator and the pre-load probe send exactly these), and how to read the answer back.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GetUserRequestSchema, type GetUserResponse, GetUserResponseSchema } from "../gen/user/v1/user_service_pb.js";

/** The protocols under load. */
export type ProtocolName = "grpc" | "connect-h2" | "connect-h1" | "grpc-web";

/** One protocol's request shape. */
export interface Protocol {
  readonly name: ProtocolName;
  readonly httpVersion: "2" | "1.1";
  /** gRPC and gRPC-web put the message in a 5-byte envelope; Connect unary sends it bare. */
  readonly enveloped: boolean;
  /** Request headers besides authorization. */
  readonly headers: Readonly<Record<string, string>>;
}

/** Request path of GetUser. */
export const GET_USER_PATH = "/user.v1.UserService/GetUser";

/** Every protocol, by name. */
export const protocols: Readonly<Record<ProtocolName, Protocol>> = {
  grpc: {
    name: "grpc",
    httpVersion: "2",
    enveloped: true,
    headers: { "content-type": "application/grpc", te: "trailers" },
  },
  "connect-h2": {
    name: "connect-h2",
    httpVersion: "2",
    enveloped: false,
    headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
  },
  "connect-h1": {
    name: "connect-h1",
    httpVersion: "1.1",
    enveloped: false,
    headers: { "content-type": "application/proto", "connect-protocol-version": "1" },
  },
  "grpc-web": {
    name: "grpc-web",
    httpVersion: "2",
    enveloped: true,
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
  },
};

function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** The request body for `userId`, and the offset of the id's text inside it. */
export function requestBody(protocol: Protocol, userId: string): { body: Uint8Array; idOffset: number } {
  const message = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { userId }));
  const body = protocol.enveloped ? envelope(0, message) : message;
  // The message is field 1 (tag, length) followed by the id's UTF-8 bytes.
  return { body, idOffset: body.length - userId.length };
}

/** Splits a gRPC/gRPC-web body into its envelopes. */
function envelopes(body: Uint8Array): { flags: number; data: Uint8Array }[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: { flags: number; data: Uint8Array }[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = view.getUint32(at + 1);
    out.push({ flags: body[at], data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** A raw HTTP response. */
export interface RawResponse {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  trailers: Readonly<Record<string, string | string[] | undefined>>;
  body: Uint8Array;
}

/** Decodes a raw response of `protocol`; throws with what was wrong when it is not a success. */
export function decodeResponse(protocol: Protocol, res: RawResponse): GetUserResponse {
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${new TextDecoder().decode(res.body).slice(0, 300)}`);
  if (!protocol.enveloped) return fromBinary(GetUserResponseSchema, res.body);
  const frames = envelopes(res.body);
  let status = res.trailers["grpc-status"] ?? res.headers["grpc-status"];
  let message = res.trailers["grpc-message"] ?? res.headers["grpc-message"];
  const trailer = frames.find((f) => f.flags & 0x80);
  if (trailer) {
    const text = new TextDecoder().decode(trailer.data);
    status = /^grpc-status:\s*(\d+)/im.exec(text)?.[1];
    message = /^grpc-message:\s*(.*)$/im.exec(text)?.[1]?.trim();
  }
  if (status !== "0") throw new Error(`grpc-status ${String(status)}: ${decodeURIComponent(String(message ?? ""))}`);
  const data = frames.find((f) => (f.flags & 0x80) === 0);
  if (!data) throw new Error("grpc-status 0 but no message");
  return fromBinary(GetUserResponseSchema, data.data);
}
