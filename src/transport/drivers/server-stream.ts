/**
 * Server-streaming calls (WatchUsers, StreamUsers) over HTTP/2 in every protocol the own paths take,
 * running the same implementations and interceptors (connect's `transformInvokeImplementation`) without
 * connect-node's stream pipeline. There, each message went through a dozen async-iterable stages (serialize,
 * envelope, join, catch, the adapter, edge-error mapping), and the profile of 1,000 watchers put 60 % of the
 * CPU there (docs/adr/0009-server-stream-path.md). Here each message is serialized once, even when the
 * same message object goes to many streams (a change sent to every watcher), framed and written with
 * backpressure; the protocol says how the stream starts and ends. HTTP/1.1 is declined, as is what
 * protocol.ts `detect` declines: connect-node serves them.
 */
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import {
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { createAsyncIterable, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { kClientAddress } from "../../rpc/context.ts";
import { withErrorInfo } from "../../rpc/wire-error.ts";
import { detect, servesStreams } from "../protocols/detect.ts";
import { toObject } from "../protocols/headers.ts";
import { encodeEnveloped } from "../protocols/messages.ts";
import type { StreamProtocol } from "../protocols/protocol.ts";
import { admitThen, budgetOf, readBody, requestHeaders } from "../request.ts";
import { bodyTooLarge, CALL_DONE, cancelledByClient, type DriverOptions } from "./call.ts";

/** A server-streaming method the fast path may serve. */
export type ServerStreamSpec = Extract<MethodImplSpec, { kind: "server_streaming" }>;

// Each message object is serialized once, however many streams it goes to. (Messages are never changed
// after they are yielded: a change event's message is shared by every watcher that sends it.)
const encoded = new WeakMap<object, Buffer>();
function envelope<O extends DescMessage>(desc: O, message: MessageShape<O>): Buffer {
  let bytes = encoded.get(message);
  if (!bytes) {
    bytes = encodeEnveloped(desc, message);
    encoded.set(message, bytes);
  }
  return bytes;
}

/** Resolves when the stream can take more, or when it is gone. */
function drained(stream: ServerHttp2Stream): Promise<void> {
  return new Promise((done) => {
    const finish = () => {
      stream.off("drain", finish);
      stream.off("close", finish);
      done();
    };
    stream.on("drain", finish);
    stream.on("close", finish);
  });
}

/** Builds the path over the server-streaming methods of the router's services. */
export function createServerStreamDriver(specs: ReadonlyMap<string, ServerStreamSpec>, opts: DriverOptions) {
  async function serve(
    stream: ServerHttp2Stream,
    raw: IncomingHttpHeaders,
    spec: ServerStreamSpec,
    protocol: StreamProtocol,
  ): Promise<void> {
    const wire = protocol.stream;
    let headersSent = false;
    const gone = () => stream.destroyed || stream.closed;
    const sendHeaders = (header: Headers) => {
      headersSent = true;
      stream.respond(
        { ":status": 200, ...toObject(header, { "content-type": wire.contentType }) },
        { waitForTrailers: wire.httpTrailers },
      );
    };
    const finish = (error: ConnectError | undefined, header: Headers, trailer: Headers) => {
      if (gone()) return;
      // Every error carries an ErrorInfo, as on connect-node's path (Protocol.normaliseErrors).
      const err = error && withErrorInfo(error);
      const end = wire.end(err, trailer);
      if (!headersSent && wire.httpTrailers) {
        // Trailers-only: the status travels in the one HEADERS frame.
        stream.respond(
          { ":status": 200, ...toObject(header, { "content-type": wire.contentType }), ...end.trailers },
          { endStream: true },
        );
        return;
      }
      if (!headersSent) sendHeaders(header);
      if (end.trailers) {
        const trailers = end.trailers;
        stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      }
      stream.end(end.body);
    };

    const timeout = protocol.timeout(raw);
    if (timeout instanceof ConnectError) return finish(timeout, new Headers(), new Headers());
    const peer = stream.session?.socket?.remoteAddress ?? "";
    const path = raw[":path"] as string;
    const denied = await admitThen(
      opts.admit,
      () => ({ path, header: (name) => raw[name] as string | undefined, peer }),
      async (d) => d,
    );
    const body = denied ? undefined : await readBody(stream, opts.readMaxBytes + 5, budgetOf(stream.session));
    if (body === undefined) {
      finish(denied ?? bodyTooLarge(opts.readMaxBytes), new Headers(), new Headers());
      // The rest of the body is never read: reset once the answer is out (RFC 9113 8.1).
      stream.close(constants.NGHTTP2_NO_ERROR);
      return;
    }
    const input = wire.decode(spec.method.input, body, opts.readMaxBytes);
    if (input instanceof ConnectError) return finish(input, new Headers(), new Headers());

    const context: HandlerContext & { abort(reason?: unknown): void } = createHandlerContext({
      service: spec.method.parent,
      method: spec.method,
      protocolName: protocol.name,
      requestMethod: "POST",
      url: path,
      timeoutMs: timeout,
      shutdownSignal: opts.shutdownSignal,
      requestHeader: requestHeaders(raw),
      contextValues: createContextValues().set(kClientAddress, peer),
    });
    const cancel = () => context.abort(cancelledByClient());
    stream.once("aborted", cancel);
    stream.once("close", cancel);
    let corked = false;
    const uncork = () => {
      corked = false;
      stream.uncork();
    };
    const output = transformInvokeImplementation(spec, context, opts.interceptors)(createAsyncIterable([input]));
    const it = output[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await it.next();
        if (next.done) break;
        if (gone()) break;
        if (!headersSent) sendHeaders(context.responseHeader);
        // Messages written in one turn of the event loop leave as one write (a watcher catching up writes many).
        if (!corked) {
          corked = true;
          stream.cork();
          setImmediate(uncork);
        }
        if (!stream.write(envelope(spec.method.output, next.value))) await drained(stream);
      }
      if (gone()) return;
      if (context.signal.aborted) throw context.signal.reason;
      finish(undefined, context.responseHeader, context.responseTrailer);
    } catch (err) {
      finish(ConnectError.from(err), context.responseHeader, context.responseTrailer);
    } finally {
      stream.off("aborted", cancel);
      stream.off("close", cancel);
      context.abort(CALL_DONE);
      // Runs the implementation's finally blocks when the client left first.
      void it.return?.()?.catch(() => {});
    }
  }

  /** Takes an HTTP/2 stream it can serve (returns true), or declines it (false). */
  return function h2(stream: ServerHttp2Stream, raw: IncomingHttpHeaders): boolean {
    const spec = specs.get(raw[":path"] as string);
    if (!spec) return false;
    const protocol = detect(raw[":method"], raw, true);
    if (!servesStreams(protocol)) return false;
    stream.on("error", () => {});
    void serve(stream, raw, spec, protocol).catch(() => {
      if (!stream.destroyed) stream.close();
    });
    return true;
  };
}
