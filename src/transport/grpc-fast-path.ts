/**
 * A faster engine for unary gRPC calls over HTTP/2, running the very same Connect service implementations
 * and interceptors. connect-node's gRPC path runs every unary call through its streaming envelope pipeline
 * (async generators, per-call abort controllers), which measured ~1.5k calls/s against ~10k for grpc-js
 * on this hardware (docs/adr/0001-grpc-fast-path.md). Here a unary call is one buffered body, one decode,
 * the interceptor chain and implementation (connect's own `invokeUnaryImplementation`), one frame and the
 * trailers. Anything unusual (compression, other content types, streaming methods) is declined and falls
 * through to connect-node's adapter, so every protocol feature stays available.
 *
 * It uses connect exports marked internal (no semver): the connect version is pinned exactly, and the
 * path is covered by tests from grpc-js, connect-node and Python grpcio.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, createHandlerContext, type Interceptor, type MethodImplSpec } from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { connectErrorFor } from "../errors.ts";
import { kClientAddress } from "../interceptors/context.ts";

/** A unary method the fast path may serve. */
export type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** Settings shared with the Connect router. */
export interface FastPathOptions {
  interceptors: Interceptor[];
  readMaxBytes: number;
  maxTimeoutMs?: number;
}

// Passed to context.abort() when a call is over: a reason avoids constructing a DOMException per call.
const CALL_DONE = new ConnectError("call complete", Code.Canceled);

function headersToObject(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((v, k) => {
    out[k] = v;
  });
  return out;
}

function sendError(stream: ServerHttp2Stream, err: ConnectError, extra?: Headers): void {
  if (stream.destroyed || stream.closed) return;
  const trailer = setTrailerStatus(new Headers(extra), err);
  if (stream.headersSent) {
    stream.close();
    return;
  }
  stream.respond({ ":status": 200, "content-type": "application/grpc", ...headersToObject(trailer) }, { endStream: true });
}

function requestHeaders(raw: IncomingHttpHeaders): Headers {
  const h = new Headers();
  for (const k in raw) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = raw[k];
    if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : v);
  }
  return h;
}

/** Decodes the single length-prefixed message of a unary request body. */
function decodeEnvelope(body: Buffer, max: number): Uint8Array | ConnectError {
  if (body.length < 5) return connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "a unary request needs exactly one message");
  const len = body.readUInt32BE(1);
  if (len > max) return connectErrorFor("RESOURCE_EXHAUSTED", Code.ResourceExhausted, `message size ${len} is larger than the limit ${max}`);
  if (body.length !== 5 + len) return connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "a unary request needs exactly one message");
  if (body[0] !== 0) return connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "compressed message without grpc-encoding");
  return body.subarray(5);
}

async function serve(stream: ServerHttp2Stream, raw: IncomingHttpHeaders, spec: UnarySpec, body: Buffer, opts: FastPathOptions) {
  const timeout = parseTimeout((raw["grpc-timeout"] as string | undefined) ?? null, opts.maxTimeoutMs ?? Number.MAX_SAFE_INTEGER);
  if (timeout.error) return sendError(stream, timeout.error);
  const bytes = decodeEnvelope(body, opts.readMaxBytes);
  if (bytes instanceof ConnectError) return sendError(stream, bytes);
  let input: ReturnType<typeof fromBinary>;
  try {
    input = fromBinary(spec.method.input, bytes);
  } catch {
    return sendError(stream, connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "the request message could not be decoded"));
  }
  const context = createHandlerContext({
    service: spec.method.parent,
    method: spec.method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: raw[":path"] as string,
    timeoutMs: timeout.timeoutMs,
    requestHeader: requestHeaders(raw),
    responseHeader: { "content-type": "application/grpc" },
    contextValues: createContextValues().set(kClientAddress, stream.session?.socket?.remoteAddress ?? ""),
  });
  const onAbort = () => context.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  stream.once("aborted", onAbort);
  try {
    const output = await invokeUnaryImplementation(spec, context, input, opts.interceptors);
    if (context.signal.aborted) throw context.signal.reason;
    const out = toBinary(spec.method.output, output);
    const frame = Buffer.allocUnsafe(5 + out.length);
    frame[0] = 0;
    frame.writeUInt32BE(out.length, 1);
    frame.set(out, 5);
    if (stream.destroyed || stream.closed) return;
    const trailer = headersToObject(context.responseTrailer);
    stream.respond({ ":status": 200, ...headersToObject(context.responseHeader) }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ ...trailer, "grpc-status": "0" }));
    stream.end(frame);
  } catch (err) {
    const e = ConnectError.from(err);
    context.responseHeader.delete("content-type");
    sendError(stream, e, context.responseHeader);
  } finally {
    stream.off("aborted", onAbort);
    context.abort(CALL_DONE);
  }
}

/**
 * Builds the fast path. The returned function takes an HTTP/2 stream and returns false when it is not a
 * call the fast path serves (the caller then hands it to the general adapter).
 */
export function createGrpcFastPath(specs: ReadonlyMap<string, UnarySpec>, opts: FastPathOptions) {
  return (stream: ServerHttp2Stream, raw: IncomingHttpHeaders): boolean => {
    if (raw[":method"] !== "POST") return false;
    const type = raw["content-type"];
    if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
    const encoding = raw["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const spec = specs.get(raw[":path"] as string);
    if (!spec) return false;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    stream.on("error", () => {});
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > opts.readMaxBytes + 5) {
        if (!tooLarge) {
          tooLarge = true;
          sendError(stream, connectErrorFor("RESOURCE_EXHAUSTED", Code.ResourceExhausted, `message is larger than the limit ${opts.readMaxBytes}`));
        }
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      if (tooLarge) return;
      void serve(stream, raw, spec, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), opts);
    });
    return true;
  };
}
