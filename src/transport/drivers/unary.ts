/**
 * Unary calls in every protocol, without connect-node's pipeline, running the very same Connect service
 * implementations and interceptors. connect-node runs every call, unary included, through its streaming
 * envelope pipeline (async generators, per-call abort controllers, universal request/response objects),
 * which measured several times slower than @grpc/grpc-js on this hardware (docs/adr/0002-unary-fast-path.md).
 * Here a unary call is one buffered body, one decode, connect's own `invokeUnaryImplementation` (the
 * interceptor chain and the implementation), and one write; the protocol says how to decode and write.
 * What the protocols' own paths do not take (protocol.ts `detect`), and streaming methods and unknown paths,
 * are declined and connect-node's adapter serves them, so every protocol feature stays available.
 *
 * It uses connect exports marked internal (no semver): the connect version is pinned exactly, and the
 * path is covered by tests from grpc-js, connect-node (every protocol) and buf curl.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { ConnectError, createContextValues, createHandlerContext, type MethodImplSpec } from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import { kClientAddress } from "../../rpc/context.ts";
import { detect, servesUnary } from "../protocols/detect.ts";
import type { UnaryProtocol, WireResponse } from "../protocols/protocol.ts";
import { admitThen, budgetOf, readBody, requestHeaders } from "../request.ts";
import { bodyTooLarge, CALL_DONE, cancelledByClient, type DriverOptions } from "./call.ts";

/** A unary method the fast path may serve. */
export type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** Runs one call; always resolves to a response (errors included). */
async function run(
  protocol: UnaryProtocol,
  spec: UnarySpec,
  raw: IncomingHttpHeaders,
  path: string,
  peer: string,
  body: Buffer,
  onCancel: (cancel: () => void) => () => void,
  opts: DriverOptions,
): Promise<WireResponse> {
  const wire = protocol.unary;
  const timeout = protocol.timeout(raw);
  if (timeout instanceof ConnectError) return wire.failure(timeout, new Headers());
  const input = wire.decode(spec.method.input, body, opts.readMaxBytes);
  if (input instanceof ConnectError) return wire.failure(input, new Headers());
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
  const stopListening = onCancel(() => context.abort(cancelledByClient()));
  try {
    const output = await invokeUnaryImplementation(spec, context, input, opts.interceptors);
    if (context.signal.aborted) throw context.signal.reason;
    return wire.success(spec.method.output, output, context.responseHeader, context.responseTrailer);
  } catch (err) {
    return wire.failure(ConnectError.from(err), context.responseHeader);
  } finally {
    // The context is garbage from here on (the stream may live on for a while as its response is written):
    // objects that outlive a young-generation GC cycle get promoted, and promotion is what grows the heap.
    stopListening();
    context.abort(CALL_DONE);
  }
}

/**
 * Builds the fast path over the unary methods of the router's services. Each adapter returns false when
 * it declines a request (the caller then hands it to connect-node).
 */
export function createUnaryDriver(specs: ReadonlyMap<string, UnarySpec>, opts: DriverOptions) {
  // A whole unary body: the message plus a gRPC envelope header, and a margin for Connect JSON.
  const bodyLimit = opts.readMaxBytes + 5;
  // The calls being served, each as a way to answer it with an error now (a Set: no per-call listener on the
  // shutdown signal). Their handlers run on; their results are dropped.
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
    const answerNow = (err: ConnectError) => answer(protocol.unary.failure(err, new Headers()));
    running.add(answerNow);
    void response.then(answer);
  };
  return {
    /** HTTP/2 streams, before Node's compatibility layer. */
    h2(stream: ServerHttp2Stream, raw: IncomingHttpHeaders): boolean {
      const path = raw[":path"] as string;
      const spec = specs.get(path);
      if (!spec) return false;
      const protocol = detect(raw[":method"], raw, true);
      if (!servesUnary(protocol)) return false;
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
          return protocol.unary.failure(denied ?? bodyTooLarge(opts.readMaxBytes), new Headers());
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
      const protocol = detect(req.method, req.headers, false);
      if (!servesUnary(protocol)) return false;
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
          return protocol.unary.failure(denied ?? bodyTooLarge(opts.readMaxBytes), new Headers());
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
