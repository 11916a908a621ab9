/**
 * One TCP port for HTTP/1.1 and HTTP/2. Node's `http2.createServer({ allowHTTP1 })` only falls back to
 * HTTP/1.1 after TLS ALPN, so cleartext needs sniffing: the first bytes of a connection are read, HTTP/2's
 * connection preface (`PRI * HTTP/2.0...`) sends it to the HTTP/2 server, anything else to the HTTP/1.1
 * server, and a TLS ClientHello (0x16) to the TLS server, whose ALPN result picks the protocol. (The
 * approach of @httptoolkit/httpolyglot, kept in-house because the gRPC fast path needs the HTTP/2 server's
 * raw `stream` events, which that package does not expose.)
 *
 * The connection limits (docs/adr/0012-listener-limits.md) are enforced here, on the model of Go's
 * net/http2 and nghttpx: a stream cap in SETTINGS, a deadline for the first request head, an idle timeout
 * and a connection cap.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { connectionLimits, type ListenerLimits } from "./connection-limits.ts";

export type { ListenerLimits } from "./connection-limits.ts";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * Memory (MB) one HTTP/2 session may hold in nghttp2 (header tables, frames and response data queued for a
 * client that does not read) before new streams are refused with ENHANCE_YOUR_CALM. Node's default of 10
 * is reached by 100 legitimate streams writing larger responses; 32 keeps one connection's outbound queue
 * bounded, next to the 16 MiB of request bodies (request.ts).
 */
const MAX_SESSION_MEMORY_MB = 32;

/** The servers behind the port. */
export interface Listener {
  readonly net: net.Server;
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
}

type Route = (socket: net.Socket, raw: net.Socket) => void;

function routeCleartext(socket: net.Socket, h1: Route, h2: Route, past?: Buffer): void {
  const chunk = socket.read() as Buffer | null;
  const data = past ? Buffer.concat([past, chunk ?? Buffer.alloc(0)]) : (chunk ?? Buffer.alloc(0));
  const decided = data.length >= PREFACE.length || !data.equals(PREFACE.subarray(0, data.length));
  if (!decided) {
    socket.once("readable", () => routeCleartext(socket, h1, h2, data));
    return;
  }
  socket.unshift(data);
  if (data.subarray(0, PREFACE.length).equals(PREFACE)) {
    // The session reads the native handle directly (fast) and is handed the bytes put back above, which
    // Node's Http2Session accepts for exactly this case (nodejs/node#34532). Forcing the JS stream path
    // instead, as httpolyglot does, cost ~70% of throughput in writev.
    h2(socket, socket);
  } else {
    h1(socket, socket);
  }
}

function sniff(socket: net.Socket, h1: Route, h2: Route, tlsServer: tls.Server | undefined): void {
  socket.on("error", () => socket.destroy());
  const first = () => {
    const peek = socket.read(1) as Buffer | null;
    if (peek === null) {
      socket.once("readable", first);
      return;
    }
    socket.unshift(peek);
    if (peek[0] === 0x16 && tlsServer) tlsServer.emit("connection", socket);
    else routeCleartext(socket, h1, h2);
  };
  first();
}

/** Creates the servers; `onRequest` serves both protocols through Node's compatibility API. */
export function createListener(opts: {
  onRequest: (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse) => void;
  tls?: { key: Buffer; cert: Buffer };
  limits: ListenerLimits;
}): Listener {
  const { limits } = opts;
  const h1 = http.createServer(
    {
      // Between requests of a kept-alive connection.
      keepAliveTimeout: limits.idleTimeoutMs,
      // Every request head after the first (the first is bounded by connectionLimits from the accept on).
      headersTimeout: limits.headersTimeoutMs,
      // A request body may take as long as its call needs (an import, a slow client); 0 keeps Node's 5 min off.
      requestTimeout: 0,
      connectionsCheckingInterval: Math.min(1000, Math.max(100, limits.headersTimeoutMs / 4)),
    },
    opts.onRequest as http.RequestListener,
  );
  // Node checks headersTimeout (and tracks connections for closeIdleConnections) only once the server has
  // emitted 'listening', which a server fed with emit("connection") never does by itself.
  h1.emit("listening");
  const h2 = http2.createServer(
    {
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
      peerMaxConcurrentStreams: 1000,
    },
    opts.onRequest as never,
  );
  const guard = connectionLimits(limits, h1, h2);
  const toH1: Route = guard.toH1;
  const toH2: Route = guard.toH2;
  const tlsServer = opts.tls
    ? tls.createServer({ key: opts.tls.key, cert: opts.tls.cert, ALPNProtocols: ["h2", "http/1.1"] }, (s) => {
        // The TLS socket wraps the TCP socket the deadline was set on.
        const raw = (s as tls.TLSSocket & { _parent?: net.Socket })._parent ?? s;
        if (s.alpnProtocol === "h2") toH2(s, raw);
        else toH1(s, raw);
      })
    : undefined;
  tlsServer?.on("tlsClientError", (_e, s) => s.destroy());
  const server = net.createServer((socket) => {
    guard.accepted(socket);
    sniff(socket, toH1, toH2, tlsServer);
  });
  // Connections beyond it are closed by Node as they are accepted.
  server.maxConnections = limits.maxConnections;
  return { net: server, h1, h2 };
}
