/**
 * The one listener that serves every protocol on one port: HTTP/1.1 and cleartext HTTP/2 (prior knowledge)
 * told apart by their first bytes, and TLS with ALPN when a certificate is configured. Unary gRPC calls go
 * to the fast path; every other request to the Connect adapter or the plain HTTP routes. No business
 * logic here.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { createCors } from "./cors.ts";
import { createListener, type ListenerLimits } from "./listener.ts";
import type { RpcHandler } from "./rpc-handler.ts";

// HTTP/2 compat requests and responses are used through their HTTP/1.1-shaped API.
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse;

/** A plain HTTP endpoint (`/healthz`, `/readyz`, ...): returns false when it does not handle the path. */
export type HttpRoute = (req: Req, res: Res) => boolean | Promise<boolean>;

/** What the listener needs. */
export interface ServerOptions {
  host: string;
  port: number;
  rpc: RpcHandler;
  /** Serves an HTTP/2 stream directly (the gRPC fast path); returns false to decline. */
  h2Stream?: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;
  routes: readonly HttpRoute[];
  corsAllowedOrigins: readonly string[];
  tls?: { certFile: string; keyFile: string };
  /** Stream cap, head and idle deadlines, connection cap (docs/adr/0012-listener-limits.md). */
  limits: ListenerLimits;
}

/** A listening server. */
export interface ListeningServer {
  readonly port: number;
  /** Stops accepting, sends GOAWAY to HTTP/2 sessions and closes idle HTTP/1.1 connections. */
  stopAccepting(): Promise<void>;
  /** Resolves when no request is in flight, or after `ms`, whichever is first; true when idle. */
  drained(ms: number): Promise<boolean>;
  /** Destroys every connection still open. */
  destroyConnections(): void;
}

/** Creates the listener and starts listening. */
export async function listen(opts: ServerOptions): Promise<ListeningServer> {
  const cors = createCors(opts.corsAllowedOrigins);
  const handle = (req: Req, res: Res) => {
    if (cors(req, res)) return;
    if (opts.rpc(req, res)) return;
    void (async () => {
      for (const route of opts.routes) if (await route(req, res)) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  };
  const {
    net: server,
    h1,
    h2,
  } = createListener({
    onRequest: handle,
    tls: opts.tls ? { key: readFileSync(opts.tls.keyFile), cert: readFileSync(opts.tls.certFile) } : undefined,
    limits: opts.limits,
  });
  if (opts.h2Stream) {
    const fast = opts.h2Stream;
    // Node's compatibility layer listens to "stream" and emits "request"; streams the fast path takes never reach it.
    const compat = h2.listeners("stream") as ((...a: unknown[]) => void)[];
    h2.removeAllListeners("stream");
    h2.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
      if (fast(stream, headers)) return;
      for (const l of compat) l.call(h2, stream, headers, ...rest);
    });
  }
  // Requests in flight (HTTP/1.1 requests and HTTP/2 streams, fast path included), for graceful shutdown.
  let inFlight = 0;
  let onIdle: (() => void) | undefined;
  const track = (done: { once(event: "close", l: () => void): unknown }) => {
    inFlight++;
    done.once("close", () => {
      inFlight--;
      if (inFlight === 0) onIdle?.();
    });
  };
  h1.on("request", (_req: IncomingMessage, res: ServerResponse) => track(res));
  h2.prependListener("stream", (stream: ServerHttp2Stream) => track(stream));
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  h2.on("session", (s: Http2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  // A malformed request on one connection must never take the process down.
  h1.on("clientError", (_err: Error, socket: Socket) => socket.destroy());
  h2.on("sessionError", () => {});
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(opts.port, opts.host, () => {
      server.off("error", fail);
      done();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    async stopAccepting() {
      const closed = new Promise<void>((done) => server.close(() => done()));
      // GOAWAY: clients stop opening streams on these sessions; calls in flight finish. A stream a client
      // opened before it saw the GOAWAY is refused (REFUSED_STREAM: not processed, safe to retry, which gRPC
      // clients report as UNAVAILABLE). nghttp2 refuses new streams after any GOAWAY, so Node cannot send
      // grpc-go's two-phase "shutdown notice" first.
      for (const s of sessions) if (!s.closed) s.close();
      h1.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 50))]);
    },
    async drained(ms: number) {
      if (inFlight === 0) return true;
      return new Promise<boolean>((done) => {
        const timer = setTimeout(() => done(inFlight === 0), ms);
        onIdle = () => {
          clearTimeout(timer);
          done(true);
        };
      });
    },
    destroyConnections() {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
      h1.closeAllConnections();
    },
  };
}
