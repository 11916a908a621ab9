/**
 * Some errors are raised by Connect before any interceptor runs: a request that cannot be decoded, one over
 * the size limit, a bad timeout or compression header. Connect answers undecodable bytes with INTERNAL, and
 * none of these carry an ErrorInfo. This wrapper rewrites such errors in each protocol's own error format
 * (gRPC trailers, the gRPC-web trailer frame, Connect's JSON error and end-stream message) so that every
 * error meets the contract: undecodable input is INVALID_ARGUMENT, and every error has an ErrorInfo.
 * Responses without an error pass through untouched.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFromJson,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { normalise } from "../rpc/wire-error.ts";

async function* mapBody(body: AsyncIterable<Uint8Array>, map: (chunk: Uint8Array) => Uint8Array, after?: () => void) {
  for await (const chunk of body) yield map(chunk);
  after?.();
}

function envelope(flag: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flag;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

/**
 * The payload of a chunk holding exactly one envelope with exactly this flag, or undefined. A compressed
 * trailer or end-stream envelope (flag | 0x01) is left alone: its payload is not text to rewrite.
 */
function singleEnvelope(chunk: Uint8Array, flag: number): Uint8Array | undefined {
  if (chunk.byteLength < 5 || chunk[0] !== flag) return undefined;
  const len = new DataView(chunk.buffer, chunk.byteOffset).getUint32(1);
  return len === chunk.byteLength - 5 ? chunk.subarray(5) : undefined;
}

function fixGrpc(res: UniversalServerResponse): UniversalServerResponse {
  const trailer = res.trailer;
  if (!trailer || !res.body) return res;
  return {
    ...res,
    body: mapBody(
      res.body,
      (c) => c,
      () => {
        const err = findTrailerError(trailer);
        const fixed = err && normalise(err);
        if (!fixed) return;
        for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(h);
        setTrailerStatus(trailer, fixed);
      },
    ),
  };
}

function fixGrpcWeb(res: UniversalServerResponse): UniversalServerResponse {
  if (!res.body) return res;
  return {
    ...res,
    body: mapBody(res.body, (chunk) => {
      const data = singleEnvelope(chunk, trailerFlag);
      if (!data) return chunk;
      const trailer = trailerParse(data);
      const err = findTrailerError(trailer);
      const fixed = err && normalise(err);
      if (!fixed) return chunk;
      for (const h of ["grpc-status", "grpc-message", "grpc-status-details-bin"]) trailer.delete(h);
      setTrailerStatus(trailer, fixed);
      return envelope(trailerFlag, trailerSerialize(trailer));
    }),
  };
}

async function* once(bytes: Uint8Array) {
  yield bytes;
}

async function fixConnectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (res.status === 200 || !res.body) return res;
  const chunks: Uint8Array[] = [];
  for await (const c of res.body) chunks.push(c);
  const bytes = new Uint8Array(Buffer.concat(chunks));
  let fixed: ConnectError | undefined;
  try {
    fixed = normalise(errorFromJsonBytes(bytes, undefined, new ConnectError("unknown", Code.Unknown)));
  } catch {
    fixed = undefined;
  }
  if (!fixed) return { ...res, body: once(bytes) };
  res.header?.delete("content-length");
  return { ...res, status: codeToHttpStatus(fixed.code), body: once(errorToJsonBytes(fixed, {})) };
}

function fixConnectStream(res: UniversalServerResponse): UniversalServerResponse {
  if (!res.body) return res;
  const endStreamFlag = 0b00000010;
  return {
    ...res,
    body: mapBody(res.body, (chunk) => {
      const data = singleEnvelope(chunk, endStreamFlag);
      if (!data) return chunk;
      const end = endStreamFromJson(data);
      const fixed = end.error && normalise(end.error);
      if (!fixed) return chunk;
      const json = JSON.stringify(endStreamToJson(end.metadata, fixed, {}));
      return envelope(endStreamFlag, new TextEncoder().encode(json));
    }),
  };
}

/** Wraps a Connect universal handler with the normalisation above. */
export function normaliseEdgeErrors(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]) => {
    const res = await handler(req);
    const type = req.header.get("content-type") ?? "";
    if (type.startsWith("application/grpc-web")) return fixGrpcWeb(res);
    if (type.startsWith("application/grpc")) return fixGrpc(res);
    if (type.startsWith("application/connect+")) return fixConnectStream(res);
    return fixConnectUnary(res);
  };
  return Object.assign(wrapped, handler) as UniversalHandler;
}
