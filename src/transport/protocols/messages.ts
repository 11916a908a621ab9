/**
 * Messages to and from bytes: binary, JSON, or binary in an envelope, with the one answer for request
 * bytes that are not a message (INVALID_ARGUMENT, as connect-node's answers are normalised to; Connect
 * itself says INTERNAL).
 */
import {
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { strictUtf8 } from "../../rpc/strict-utf8.ts";
import { connectErrorFor } from "../../rpc/wire-error.ts";
import { DATA, frame, unframe } from "./envelope.ts";

const undecodable = () =>
  connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "the request message could not be decoded");

export function decodeBinary<I extends DescMessage>(desc: I, bytes: Uint8Array): MessageShape<I> | ConnectError {
  try {
    return fromBinary(desc, bytes);
  } catch {
    return undecodable();
  }
}

/** Invalid UTF-8 is undecodable too, not U+FFFD. Unknown fields are ignored, as connect-node does. */
export function decodeJson<I extends DescMessage>(desc: I, bytes: Uint8Array): MessageShape<I> | ConnectError {
  try {
    return fromJson(desc, JSON.parse(strictUtf8.decode(bytes)) as JsonValue, { ignoreUnknownFields: true });
  } catch {
    return undecodable();
  }
}

/** The one message of a request body that is a single envelope (gRPC, gRPC-web, Connect streaming). */
export function decodeEnveloped<I extends DescMessage>(
  desc: I,
  body: Buffer,
  max: number,
): MessageShape<I> | ConnectError {
  const payload = unframe(body, max);
  return payload instanceof Uint8Array ? decodeBinary(desc, payload) : payload;
}

/** A response message in its envelope. */
export function encodeEnveloped<O extends DescMessage>(desc: O, message: MessageShape<O>): Buffer {
  return frame(DATA, toBinary(desc, message));
}
