/**
 * Deadlines of each connection, as Go's net/http2 and nghttpx set them (ReadHeaderTimeout, IdleTimeout):
 *
 * - **head**: from the TCP accept, a connection has HEADERS_TIMEOUT to send a complete first request head
 *   (HTTP/1.1) or its preface and SETTINGS (HTTP/2), TLS handshake included. A silent socket, a partial
 *   preface and a preface without SETTINGS are all closed by it. Later heads of a kept-alive HTTP/1.1
 *   connection are bounded by Node's own `headersTimeout` (listener.ts).
 * - **idle**: an HTTP/2 session with no open stream for IDLE_TIMEOUT gets a GOAWAY and is closed. Open
 *   streams are counted, not bytes: a WatchUsers stream that stays quiet for hours keeps its session, and
 *   PINGs alone do not. (HTTP/1.1 between requests: Node's `keepAliveTimeout`, set to the same value.)
 */
import type { IncomingMessage, Server } from "node:http";
import { constants, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { Socket } from "node:net";

/** The listener's limits, from configuration (H2_MAX_CONCURRENT_STREAMS, HEADERS_TIMEOUT, ...). */
export interface ListenerLimits {
  readonly maxConcurrentStreams: number;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
}

/** Closes an HTTP/2 session after `ms` without an open stream. */
function closeWhenIdle(session: ServerHttp2Session, ms: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (session.closed || session.destroyed) return;
      session.goaway(constants.NGHTTP2_NO_ERROR);
      session.close();
    }, ms);
  };
  arm();
  session.on("stream", (stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      open--;
      if (open === 0 && !session.closed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
}

/**
 * Enforces the deadlines on the connections the listener hands to `h1` and `h2`: `accepted` starts a TCP
 * socket's head deadline, `toH1`/`toH2` hand a socket (the TCP one, or the TLS socket wrapping `raw`) over.
 */
export function connectionLimits(limits: ListenerLimits, h1: Server, h2: Http2Server) {
  const headDeadlines = new WeakMap<Socket, NodeJS.Timeout>();
  // The TCP socket under each socket handed over (itself, or the one a TLS socket wraps).
  const rawOf = new WeakMap<Socket, Socket>();
  const headDone = (raw: Socket | undefined) => {
    const timer = raw && headDeadlines.get(raw);
    if (!timer) return;
    clearTimeout(timer);
    headDeadlines.delete(raw);
  };
  h1.on("request", (req: IncomingMessage) => headDone(rawOf.get(req.socket) ?? req.socket));
  // Node creates the session synchronously inside emit("connection"): `handing` is the socket being handed.
  let handing: Socket | undefined;
  h2.on("session", (session: ServerHttp2Session) => {
    const raw = handing;
    if (raw) session.once("remoteSettings", () => headDone(raw));
    closeWhenIdle(session, limits.idleTimeoutMs);
  });
  return {
    accepted(socket: Socket): void {
      headDeadlines.set(
        socket,
        setTimeout(() => socket.destroy(), limits.headersTimeoutMs),
      );
      socket.once("close", () => headDone(socket));
    },
    toH1(socket: Socket, raw: Socket): void {
      rawOf.set(socket, raw);
      h1.emit("connection", socket);
    },
    toH2(socket: Socket, raw: Socket): void {
      handing = raw;
      try {
        h2.emit("connection", socket);
      } finally {
        handing = undefined;
      }
    },
  };
}
