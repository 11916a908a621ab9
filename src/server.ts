/**
 * The one listener that serves every protocol on one port: HTTP/1.1 and cleartext HTTP/2 (prior knowledge)
 * told apart by their first bytes (httpolyglot), and TLS with ALPN when a certificate is configured. It
 * routes RPCs to the Connect handler and answers the plain HTTP endpoints. No business logic here.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2Session } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import * as httpolyglot from "@httptoolkit/httpolyglot";
import { createCors } from "./transport/cors.ts";
import type { RpcHandler } from "./transport/rpc-handler.ts";

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
  routes: readonly HttpRoute[];
  corsAllowedOrigins: readonly string[];
  tls?: { certFile: string; keyFile: string };
}

/** A listening server. */
export interface ListeningServer {
  readonly port: number;
  /** Stops accepting, sends GOAWAY to HTTP/2 sessions and closes idle HTTP/1.1 connections. */
  stopAccepting(): Promise<void>;
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
  const server = httpolyglot.createServer(
    {
      tls: opts.tls ? { key: readFileSync(opts.tls.keyFile), cert: readFileSync(opts.tls.certFile), ALPNProtocols: ["h2", "http/1.1"] } : undefined,
      http2: { maxSessionMemory: 64 },
    } as never,
    handle as never,
  );
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  server.on("session", (s: Http2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  // A malformed request on one connection must never take the process down.
  server.on("clientError", (_err: Error, socket: Socket) => socket.destroy());
  server.on("sessionError", () => {});
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
      for (const s of sessions) if (!s.closed) s.close();
      (server as unknown as { _httpServer?: { closeIdleConnections?: () => void } })._httpServer?.closeIdleConnections?.();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 50))]);
    },
    destroyConnections() {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}
