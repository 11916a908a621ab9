/**
 * The 5-byte envelope (flags, big-endian payload length, payload) that frames messages in gRPC, gRPC-web
 * and Connect streaming. Its layout lives here only: the own paths frame responses and unframe unary
 * requests with it, the edge-error rewrite finds the gRPC-web trailer and Connect end-stream envelopes in
 * connect-node's responses with it, and the body budget counts the messages of client streams with it.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { connectErrorFor } from "../../rpc/wire-error.ts";

/** A message. */
export const DATA = 0;
/** Connect streaming: the end-of-stream message (JSON: error and trailers). */
export const END_STREAM = 0x02;
/** gRPC-web: the trailers, as HTTP/1-style header lines. */
export const TRAILER = 0x80;

const HEADER = 5;

/** `payload` in one envelope with `flags`. */
export function frame(flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER);
  return out;
}

/**
 * The payload of a unary request body: exactly one uncompressed message envelope, at most `max` bytes,
 * or the error that answers the call.
 */
export function unframe(body: Buffer, max: number): Buffer | ConnectError {
  if (body.length < HEADER)
    return connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "a unary request needs exactly one message");
  const len = body.readUInt32BE(1);
  if (len > max) return tooLarge(len, max);
  if (body.length !== HEADER + len || body[0] !== DATA) {
    return connectErrorFor(
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "a unary request needs exactly one uncompressed message",
    );
  }
  return body.subarray(HEADER);
}

/** RESOURCE_EXHAUSTED for a message of `n` bytes over the limit. */
export function tooLarge(n: number, max: number): ConnectError {
  return connectErrorFor(
    "RESOURCE_EXHAUSTED",
    Code.ResourceExhausted,
    `message size ${n} is larger than the limit ${max}`,
  );
}

/**
 * The payload of a chunk holding exactly one envelope with exactly these flags, or undefined. (connect-node
 * writes each envelope as one chunk.) A compressed one (flags | 0x01) does not match: its payload is not
 * text to rewrite.
 */
function singleEnvelope(chunk: Uint8Array, flags: number): Uint8Array | undefined {
  if (chunk.byteLength < HEADER || chunk[0] !== flags) return undefined;
  const len = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  return len === chunk.byteLength - HEADER ? chunk.subarray(HEADER) : undefined;
}

/**
 * `body` with each chunk that is a single envelope with `flags` replaced by `rewrite`'s payload in an
 * envelope with the same flags; `rewrite` returns undefined to keep the chunk as it is.
 */
export async function* rewriteEnvelopes(
  body: AsyncIterable<Uint8Array>,
  flags: number,
  rewrite: (payload: Uint8Array) => Uint8Array | undefined,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    const payload = singleEnvelope(chunk, flags);
    const replaced = payload && rewrite(payload);
    yield replaced ? frame(flags, replaced) : chunk;
  }
}

/**
 * Counts how far a byte stream of envelopes has got: each call takes the next chunk and returns how many
 * of its bytes belong to envelopes completed within it.
 */
export function envelopeEnds(): (chunk: Uint8Array) => number {
  const header = new Uint8Array(HEADER);
  let headerLength = 0;
  let remaining = 0;
  return (chunk) => {
    let pos = 0;
    let lastEnd = 0;
    while (pos < chunk.length) {
      if (headerLength < HEADER) {
        header[headerLength++] = chunk[pos++];
        if (headerLength < HEADER) continue;
        remaining = new DataView(header.buffer).getUint32(1);
      } else {
        const n = Math.min(remaining, chunk.length - pos);
        remaining -= n;
        pos += n;
      }
      if (headerLength === HEADER && remaining === 0) {
        headerLength = 0;
        lastEnd = pos;
      }
    }
    return lastEnd;
  };
}
