/**
 * One TCP port for HTTP/1.1 and HTTP/2. Node's `http2.createServer({ allowHTTP1 })` only falls back to
 * HTTP/1.1 after TLS ALPN, so cleartext needs sniffing: the first bytes of a connection are read, HTTP/2's
 * connection preface (`PRI * HTTP/2.0...`) sends it to the HTTP/2 server, anything else to the HTTP/1.1
 * server, and a TLS ClientHello (0x16) to the TLS server, whose ALPN result picks the protocol. (The
 * approach of @httptoolkit/httpolyglot, kept in-house because the gRPC fast path needs the HTTP/2 server's
 * raw `stream` events, which that package does not expose.)
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** The servers behind the port. */
export interface Listener {
  readonly net: net.Server;
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
}

function routeCleartext(socket: net.Socket, h1: http.Server, h2: http2.Http2Server, past?: Buffer): void {
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
    h2.emit("connection", socket);
  } else {
    h1.emit("connection", socket);
  }
}

function sniff(socket: net.Socket, h1: http.Server, h2: http2.Http2Server, tlsServer: tls.Server | undefined): void {
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
  h2Settings?: http2.Settings;
}): Listener {
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, opts.onRequest as http.RequestListener);
  const h2 = http2.createServer(
    { settings: opts.h2Settings, maxSessionMemory: 64, peerMaxConcurrentStreams: 1000 },
    opts.onRequest as never,
  );
  const tlsServer = opts.tls
    ? tls.createServer({ key: opts.tls.key, cert: opts.tls.cert, ALPNProtocols: ["h2", "http/1.1"] }, (s) => {
        if (s.alpnProtocol === "h2") h2.emit("connection", s);
        else h1.emit("connection", s);
      })
    : undefined;
  tlsServer?.on("tlsClientError", (_e, s) => s.destroy());
  const server = net.createServer((socket) => sniff(socket, h1, h2, tlsServer));
  return { net: server, h1, h2 };
}
