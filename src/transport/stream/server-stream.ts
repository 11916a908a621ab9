/**
 * Server-streaming calls (WatchUsers, StreamUsers) over HTTP/2 in gRPC, gRPC-web and Connect (binary),
 * running the same implementations and interceptors (connect's `transformInvokeImplementation`) without
 * connect-node's stream pipeline. There, each message went through a dozen async-iterable stages (serialize,
 * envelope, join, catch, the adapter, edge-error mapping), and the profile of 1,000 watchers put 60 % of the
 * CPU there (docs/adr/0009-server-stream-path.md). Here each message is serialized once, even when the
 * same message object goes to many streams (a change sent to every watcher), framed and written with
 * backpressure. Compression, JSON, gRPC-web text and HTTP/1.1 are declined: connect-node serves them.
 */
import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { createAsyncIterable, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { endStreamFlag, endStreamToJson } from "@connectrpc/connect/protocol-connect";
import type { Admit } from "../../rpc/admit.ts";
import { kClientAddress } from "../../rpc/context.ts";
import { connectErrorFor, withErrorInfo } from "../../rpc/wire-error.ts";
import { admitThen, budgetOf, readBody, requestHeaders } from "../request.ts";
import {
  connectTimeout,
  frame,
  grpcStatusHeaders,
  grpcTimeout,
  grpcWebTrailers,
  identity,
  toObject,
  unframe,
} from "../unary/protocols.ts";

/** A server-streaming method the fast path may serve. */
export type ServerStreamSpec = Extract<MethodImplSpec, { kind: "server_streaming" }>;

/** How one protocol starts, frames and ends a server stream. */
interface StreamProtocol {
  readonly name: "grpc" | "grpc-web" | "connect";
  readonly contentType: string;
  timeout(header: (name: string) => string | undefined): number | undefined | ConnectError;
  /** What ends the stream: a last body chunk and/or HTTP trailers. */
  end(err: ConnectError | undefined, trailer: Headers): { body?: Uint8Array; trailers?: Record<string, string> };
}

/** The gRPC status trailers (shared by gRPC and gRPC-web, which differ only in how trailers are sent). */
function withGrpcStatus(err: ConnectError | undefined, trailer: Headers): Headers {
  if (err) grpcStatusHeaders(err, trailer);
  else trailer.set("grpc-status", "0");
  return trailer;
}

const grpcStream: StreamProtocol = {
  name: "grpc",
  contentType: "application/grpc",
  timeout: grpcTimeout,
  end: (err, trailer) => ({ trailers: toObject(withGrpcStatus(err, trailer)) }),
};

const grpcWebStream: StreamProtocol = {
  name: "grpc-web",
  contentType: "application/grpc-web+proto",
  timeout: grpcTimeout,
  end: (err, trailer) => ({ body: grpcWebTrailers(withGrpcStatus(err, trailer)) }),
};

const connectStream: StreamProtocol = {
  name: "connect",
  contentType: "application/connect+proto",
  timeout: connectTimeout,
  end(err, trailer) {
    const json = JSON.stringify(endStreamToJson(trailer, err, {}));
    return { body: frame(endStreamFlag, Buffer.from(json)) };
  },
};

/** The streaming protocol of a request this path can serve, or undefined. */
function detect(raw: IncomingHttpHeaders): StreamProtocol | undefined {
  if (raw[":method"] !== "POST") return undefined;
  switch (raw["content-type"]) {
    case "application/grpc":
    case "application/grpc+proto":
      return identity(raw["grpc-encoding"] as string | undefined) ? grpcStream : undefined;
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return identity(raw["grpc-encoding"] as string | undefined) ? grpcWebStream : undefined;
    case "application/connect+proto":
      return identity(raw["connect-content-encoding"] as string | undefined) ? connectStream : undefined;
    default:
      return undefined;
  }
}

// Each message object is serialized once, however many streams it goes to. (Messages are never changed
// after they are yielded: a change event's message is shared by every watcher that sends it.)
const encoded = new WeakMap<object, Buffer>();
function envelope<O extends DescMessage>(desc: O, message: MessageShape<O>): Buffer {
  let bytes = encoded.get(message);
  if (!bytes) {
    bytes = frame(0, toBinary(desc, message));
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
export function createServerStreamPath(
  specs: ReadonlyMap<string, ServerStreamSpec>,
  opts: { interceptors: Interceptor[]; readMaxBytes: number; shutdownSignal?: AbortSignal; admit?: Admit },
) {
  async function serve(
    stream: ServerHttp2Stream,
    raw: IncomingHttpHeaders,
    spec: ServerStreamSpec,
    protocol: StreamProtocol,
  ): Promise<void> {
    let headersSent = false;
    const gone = () => stream.destroyed || stream.closed;
    const sendHeaders = (header: Headers) => {
      headersSent = true;
      stream.respond(
        { ":status": 200, ...toObject(header, { "content-type": protocol.contentType }) },
        { waitForTrailers: protocol === grpcStream },
      );
    };
    const finish = (error: ConnectError | undefined, header: Headers, trailer: Headers) => {
      if (gone()) return;
      // Every error carries an ErrorInfo, as on connect-node's path (edge-errors.ts).
      const err = error && withErrorInfo(error);
      const end = protocol.end(err, trailer);
      if (!headersSent && protocol === grpcStream) {
        // Trailers-only: the status travels in the one HEADERS frame.
        stream.respond(
          { ":status": 200, ...toObject(header, { "content-type": protocol.contentType }), ...end.trailers },
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

    const header = (name: string) => raw[name] as string | undefined;
    const timeout = protocol.timeout(header);
    if (timeout instanceof ConnectError) return finish(timeout, new Headers(), new Headers());
    const peer = stream.session?.socket?.remoteAddress ?? "";
    const path = raw[":path"] as string;
    const denied = await admitThen(
      opts.admit,
      () => ({ path, header, peer }),
      async (d) => d,
    );
    const body = denied ? undefined : await readBody(stream, opts.readMaxBytes + 5, budgetOf(stream.session));
    if (body === undefined) {
      finish(
        denied ??
          connectErrorFor(
            "RESOURCE_EXHAUSTED",
            Code.ResourceExhausted,
            `message is larger than the limit ${opts.readMaxBytes}`,
          ),
        new Headers(),
        new Headers(),
      );
      // The rest of the body is never read: reset once the answer is out (RFC 9113 8.1).
      stream.close(constants.NGHTTP2_NO_ERROR);
      return;
    }
    const input = unframe(spec.method.input, body, opts.readMaxBytes);
    if (input instanceof ConnectError) return finish(input, new Headers(), new Headers());

    const context: HandlerContext & { abort(reason?: unknown): void } = createHandlerContext({
      service: spec.method.parent,
      method: spec.method,
      protocolName: protocol.name,
      requestMethod: "POST",
      url: raw[":path"] as string,
      timeoutMs: timeout,
      shutdownSignal: opts.shutdownSignal,
      requestHeader: requestHeaders(raw),
      contextValues: createContextValues().set(kClientAddress, stream.session?.socket?.remoteAddress ?? ""),
    });
    const cancel = () => context.abort(new ConnectError("the client cancelled the call", Code.Canceled));
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
      context.abort(new ConnectError("call complete", Code.Canceled));
      // Runs the implementation's finally blocks when the client left first.
      void it.return?.()?.catch(() => {});
    }
  }

  /** Takes an HTTP/2 stream it can serve (returns true), or declines it (false). */
  return function h2(stream: ServerHttp2Stream, raw: IncomingHttpHeaders): boolean {
    const spec = specs.get(raw[":path"] as string);
    if (!spec) return false;
    const protocol = detect(raw);
    if (!protocol) return false;
    stream.on("error", () => {});
    void serve(stream, raw, spec, protocol).catch(() => {
      if (!stream.destroyed) stream.close();
    });
    return true;
  };
}
