/**
 * A faster engine for unary calls in all three protocols, running the very same Connect service
 * implementations and interceptors. connect-node runs every call, unary included, through its streaming
 * envelope pipeline (async generators, per-call abort controllers, universal request/response objects),
 * which measured several times slower than @grpc/grpc-js on this hardware (docs/adr/0001-unary-fast-path.md).
 * Here a unary call is one buffered body, one decode, connect's own `invokeUnaryImplementation` (the
 * interceptor chain and the implementation), and one write. Anything unusual (compression, gRPC-web text,
 * Connect GET, streaming methods, unknown paths) is declined and connect-node's adapter serves it, so every
 * protocol feature stays available.
 *
 * It uses connect exports marked internal (no semver): the connect version is pinned exactly, and the
 * path is covered by tests from grpc-js, connect-node (every protocol) and buf curl.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import type { Admit } from "../../rpc/admit.ts";
import { kClientAddress } from "../../rpc/context.ts";
import { connectErrorFor } from "../../rpc/wire-error.ts";
import { admitThen, budgetOf, readBody, requestHeaders } from "../request.ts";
import { detect, type UnaryProtocol, type WireResponse } from "./protocols.ts";

/** A unary method the fast path may serve. */
export type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** Settings shared with the Connect router. */
export interface FastPathOptions {
  interceptors: Interceptor[];
  readMaxBytes: number;
  /**
   * Aborted when the server gives up waiting for calls at shutdown: every call still running is answered
   * at once with the reason (UNAVAILABLE), so its client retries elsewhere instead of seeing its stream
   * reset when the connections close. The handler itself runs on; its result is dropped.
   */
  shutdownSignal?: AbortSignal;
  /** Checked before a call's body is read (rate limits); its error is the answer. */
  admit?: Admit;
}

// Passed to context.abort() when a call is over: a reason avoids constructing a DOMException per call.
const CALL_DONE = new ConnectError("call complete", Code.Canceled);

/** Runs one call; always resolves to a response (errors included). */
async function run(
  protocol: UnaryProtocol,
  spec: UnarySpec,
  raw: IncomingHttpHeaders,
  path: string,
  peer: string,
  body: Buffer,
  onCancel: (cancel: () => void) => () => void,
  opts: FastPathOptions,
): Promise<WireResponse> {
  const header = (name: string) => raw[name] as string | undefined;
  const timeout = protocol.timeout(header);
  if (timeout instanceof ConnectError) return protocol.failure(timeout, new Headers());
  const input = protocol.decode(spec.method.input, body, opts.readMaxBytes);
  if (input instanceof ConnectError) return protocol.failure(input, new Headers());
  const context = createHandlerContext({
    service: spec.method.parent,
    method: spec.method,
    protocolName: protocol.name,
    requestMethod: "POST",
    url: path,
    timeoutMs: timeout,
    requestHeader: requestHeaders(raw),
    contextValues: createContextValues().set(kClientAddress, peer),
  });
  const stopListening = onCancel(() => context.abort(new ConnectError("the client cancelled the call", Code.Canceled)));
  try {
    const output = await invokeUnaryImplementation(spec, context, input, opts.interceptors);
    if (context.signal.aborted) throw context.signal.reason;
    return protocol.success(spec.method.output, output, context.responseHeader, context.responseTrailer);
  } catch (err) {
    return protocol.failure(ConnectError.from(err), context.responseHeader);
  } finally {
    // The context is garbage from here on (the stream may live on for a while as its response is written):
    // objects that outlive a young-generation GC cycle get promoted, and promotion is what grows the heap.
    stopListening();
    context.abort(CALL_DONE);
  }
}

const oversize = (max: number) =>
  connectErrorFor("RESOURCE_EXHAUSTED", Code.ResourceExhausted, `message is larger than the limit ${max}`);

/**
 * Builds the fast path over the unary methods of the router's services. Each adapter returns false when
 * it declines a request (the caller then hands it to connect-node).
 */
export function createUnaryFastPath(specs: ReadonlyMap<string, UnarySpec>, opts: FastPathOptions) {
  // A whole unary body: the message plus a gRPC envelope header, and a margin for Connect JSON.
  const bodyLimit = opts.readMaxBytes + 5;
  // The calls being served, each as a way to answer it with an error now (a Set: no per-call listener on the
  // shutdown signal).
  const running = new Set<(err: ConnectError) => void>();
  opts.shutdownSignal?.addEventListener(
    "abort",
    () => {
      const reason = ConnectError.from(opts.shutdownSignal?.reason);
      for (const answerNow of running) answerNow(reason);
    },
    { once: true },
  );
  /** Serves one call: `write` runs once, with the call's response or with the shutdown's error. */
  const serve = (protocol: UnaryProtocol, response: Promise<WireResponse>, write: (res: WireResponse) => void) => {
    let answered = false;
    const answer = (res: WireResponse) => {
      if (answered) return;
      answered = true;
      running.delete(answerNow);
      write(res);
    };
    const answerNow = (err: ConnectError) => answer(protocol.failure(err, new Headers()));
    running.add(answerNow);
    void response.then(answer);
  };
  return {
    /** HTTP/2 streams, before Node's compatibility layer. */
    h2(stream: ServerHttp2Stream, raw: IncomingHttpHeaders): boolean {
      const path = raw[":path"] as string;
      const spec = specs.get(path);
      if (!spec) return false;
      const protocol = detect(raw[":method"], (n) => raw[n] as string | undefined, true);
      if (!protocol) return false;
      stream.on("error", () => {});
      const onCancel = (cancel: () => void) => {
        if (stream.aborted) cancel();
        else stream.once("aborted", cancel);
        return () => stream.removeListener("aborted", cancel);
      };
      const peer = stream.session?.socket?.remoteAddress ?? "";
      // Answered without reading the whole body (refused, or over the limit): the rest is reset, not read.
      let unread = false;
      const response = admitThen(
        opts.admit,
        () => ({ path, header: (n) => raw[n] as string | undefined, peer }),
        async (denied) => {
          const body = denied ? undefined : await readBody(stream, bodyLimit, budgetOf(stream.session));
          if (body !== undefined) return run(protocol, spec, raw, path, peer, body, onCancel, opts);
          unread = true;
          return protocol.failure(denied ?? oversize(opts.readMaxBytes), new Headers());
        },
      );
      serve(protocol, response, (res) => {
        if (stream.destroyed || stream.closed) return;
        const trailers = res.trailers;
        const ends = res.body === undefined;
        stream.respond(
          { ":status": res.status, ...res.headers },
          { endStream: ends, waitForTrailers: !ends && trailers !== undefined },
        );
        if (trailers) stream.once("wantTrailers", () => stream.sendTrailers(trailers));
        if (!ends) stream.end(res.body);
        // RFC 9113 8.1: a response sent before the request is complete is followed by RST_STREAM(NO_ERROR),
        // sent once the response is out, so the client stops sending.
        if (unread) stream.close(constants.NGHTTP2_NO_ERROR);
      });
      return true;
    },

    /** HTTP/1.1 requests (gRPC-web and Connect; gRPC needs HTTP/2). */
    h1(req: IncomingMessage, res: ServerResponse): boolean {
      const path = (req.url ?? "").split("?", 1)[0];
      const spec = specs.get(path);
      if (!spec || req.url !== path) return false;
      const protocol = detect(req.method, (n) => req.headers[n] as string | undefined, false);
      if (!protocol) return false;
      const onCancel = (cancel: () => void) => {
        const onClose = () => {
          if (!res.writableFinished) cancel();
        };
        res.once("close", onClose);
        return () => res.removeListener("close", onClose);
      };
      const peer = req.socket.remoteAddress ?? "";
      let unread = false;
      const response = admitThen(
        opts.admit,
        () => ({ path, header: (n) => req.headers[n] as string | undefined, peer }),
        async (denied) => {
          const body = denied ? undefined : await readBody(req, bodyLimit);
          if (body !== undefined) return run(protocol, spec, req.headers, path, peer, body, onCancel, opts);
          unread = true;
          return protocol.failure(denied ?? oversize(opts.readMaxBytes), new Headers());
        },
      );
      serve(protocol, response, (wire) => {
        if (res.destroyed) return;
        // The rest of an unread body is never read: the connection closes after the answer.
        res.writeHead(wire.status, unread && !req.complete ? { ...wire.headers, connection: "close" } : wire.headers);
        res.end(wire.body);
      });
      return true;
    },
  };
}
