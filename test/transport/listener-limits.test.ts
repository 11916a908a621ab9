/**
 * The listener's connection limits over the wire (docs/adr/0012-listener-limits.md), with short timeouts:
 * slow and silent connections are closed by HEADERS_TIMEOUT (plain, HTTP/1.1, HTTP/2 and TLS), idle ones
 * by IDLE_TIMEOUT (HTTP/2 with a GOAWAY) but never while a stream is open, connections past
 * MAX_CONNECTIONS are closed at once, and the Node build carries the nghttp2 fixes for rapid reset and
 * CONTINUATION floods.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WatchUsersRequestSchema } from "../../gen/user/v1/user_service_pb.js";
import { adminToken } from "../helpers/accounts.ts";
import { grpcFrame } from "../helpers/raw.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const HEADERS_MS = 1000;
const IDLE_MS = 2000;
// Node checks HTTP/1.1 head deadlines on an interval (a quarter of HEADERS_TIMEOUT), plus timer jitter.
const SLACK_MS = 700;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

let server: TestServer;
let port: number;
beforeAll(async () => {
  server = await startTestServer({ HEADERS_TIMEOUT: "1s", IDLE_TIMEOUT: "2s" });
  port = server.port;
});
afterAll(() => server?.close());

/** Connects, writes `bytes`, and resolves with the ms from the write until the server closed the socket. */
function closedAfter(bytes: Buffer | string, onData?: (chunk: Buffer) => void): Promise<number> {
  return new Promise((done, fail) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      const started = performance.now();
      if (bytes.length > 0) socket.write(bytes);
      socket.on("data", (c) => onData?.(c));
      socket.on("close", () => done(performance.now() - started));
    });
    socket.on("error", () => {});
    socket.setTimeout(15_000, () => fail(new Error("still open after 15 s")));
  });
}

describe("HEADERS_TIMEOUT", () => {
  it("closes a socket that sends nothing", async () => {
    const ms = await closedAfter("");
    expect(ms).toBeGreaterThan(HEADERS_MS - 100);
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
  });

  it("closes a partial HTTP/1.1 request head", async () => {
    const ms = await closedAfter("POST /user.v1.UserService/GetUser HTTP/1.1\r\nHost: x\r\nContent-Type: app");
    expect(ms).toBeGreaterThan(HEADERS_MS - 100);
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
  });

  it("closes a 16-byte partial HTTP/2 preface", async () => {
    const ms = await closedAfter(PREFACE.subarray(0, 16));
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
  });

  it("closes an HTTP/2 preface that is not followed by SETTINGS", async () => {
    const ms = await closedAfter(PREFACE);
    expect(ms).toBeGreaterThan(HEADERS_MS - 100);
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
  });

  it("closes a second request head on a kept-alive HTTP/1.1 connection that never completes", async () => {
    let answered = false;
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    const started = await new Promise<number>((done) => {
      socket.on("data", (c) => {
        if (answered || !c.toString().includes("ok\n")) return;
        answered = true;
        socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        done(performance.now());
      });
      socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    });
    const ms = await new Promise<number>((done) => socket.on("close", () => done(performance.now() - started)));
    // The head deadline, well before the idle timeout would have closed it.
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
    expect(ms).toBeLessThan(IDLE_MS);
  });

  it("closes a TLS connection whose handshake never completes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "listener-tls-"));
    const tlsServer = await (async () => {
      try {
        execFileSync(
          "openssl",
          [
            ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
            ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
          ],
          { stdio: "ignore" },
        );
        return await startTestServer({
          HEADERS_TIMEOUT: "1s",
          TLS_CERT_FILE: join(dir, "cert.pem"),
          TLS_KEY_FILE: join(dir, "key.pem"),
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    })();
    try {
      // A well-behaved TLS client is served...
      const alpn = await new Promise<string | false>((done, fail) => {
        const s = tls.connect({
          port: tlsServer.port,
          host: "127.0.0.1",
          rejectUnauthorized: false,
          ALPNProtocols: ["h2"],
        });
        s.on("secureConnect", () => {
          done(s.alpnProtocol ?? false);
          s.destroy();
        });
        s.on("error", fail);
      });
      expect(alpn).toBe("h2");
      // ...one that starts a ClientHello and stops is closed by the head deadline.
      const ms = await new Promise<number>((done) => {
        const socket = net.connect(tlsServer.port, "127.0.0.1", () => {
          const started = performance.now();
          socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
          socket.on("close", () => done(performance.now() - started));
        });
        socket.on("error", () => {});
      });
      expect(ms).toBeGreaterThan(HEADERS_MS - 100);
      expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS);
    } finally {
      await tlsServer.close();
    }
  });
});

describe("IDLE_TIMEOUT", () => {
  it("closes a kept-alive HTTP/1.1 connection after its last response", async () => {
    // Node waits keepAliveTimeoutBuffer (1 s) past the `Keep-Alive: timeout=2` it advertises, so that
    // clients, told 2 s, close first.
    let answeredAt = 0;
    const ms = await closedAfter("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", (c) => {
      if (c.toString().includes("ok\n")) answeredAt = performance.now();
    });
    expect(answeredAt).toBeGreaterThan(0);
    expect(ms).toBeGreaterThan(IDLE_MS - 100);
    expect(ms).toBeLessThan(IDLE_MS + 1000 + SLACK_MS);
  });

  it("sends GOAWAY to an HTTP/2 session without streams, and closes it", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    await new Promise<void>((done) => {
      const req = session.request({ ":path": "/healthz" });
      req.resume();
      req.on("end", done);
      req.end();
    });
    const lastStream = performance.now();
    const goaway = new Promise<number>((done) => session.once("goaway", (code) => done(code)));
    const closed = new Promise<number>((done) => session.once("close", () => done(performance.now() - lastStream)));
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    const ms = await closed;
    expect(ms).toBeGreaterThan(IDLE_MS - 100);
    expect(ms).toBeLessThan(IDLE_MS + SLACK_MS);
  });

  it("never closes an HTTP/2 session carrying an open WatchUsers stream, however quiet", async () => {
    const token = await adminToken(server.url);
    const session = http2.connect(server.url);
    session.on("error", () => {});
    let goaway = false;
    session.on("goaway", () => {
      goaway = true;
    });
    const watch = session.request({
      ":method": "POST",
      ":path": "/user.v1.UserService/WatchUsers",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${token}`,
    });
    watch.on("error", () => {});
    watch.resume();
    watch.end(grpcFrame(toBinary(WatchUsersRequestSchema, create(WatchUsersRequestSchema, {}))));
    // (The watch sends no headers until its first event: a quiet stream is silent.)
    await new Promise((r) => setTimeout(r, 300));
    expect(watch.closed).toBe(false);
    // Two and a half idle timeouts with no traffic at all (the heartbeat is 15 s).
    await new Promise((r) => setTimeout(r, IDLE_MS * 2.5));
    expect(goaway).toBe(false);
    expect(session.closed || session.destroyed).toBe(false);
    expect(watch.closed).toBe(false);
    // Once the stream ends, the session is idle and is closed.
    const closed = new Promise<number>((done) => {
      const started = performance.now();
      session.once("close", () => done(performance.now() - started));
    });
    watch.close(http2.constants.NGHTTP2_CANCEL);
    const ms = await closed;
    expect(goaway).toBe(true);
    expect(ms).toBeLessThan(IDLE_MS + SLACK_MS);
  }, 20_000);
});

describe("MAX_CONNECTIONS", () => {
  it("closes the connection beyond it at once; the others keep working", async () => {
    const small = await startTestServer({ MAX_CONNECTIONS: "2" });
    const health = (session: http2.ClientHttp2Session) =>
      new Promise<number>((done, fail) => {
        const req = session.request({ ":path": "/healthz" });
        req.on("response", (h) => done(Number(h[":status"])));
        req.on("error", fail);
        req.resume();
        req.end();
      });
    const a = http2.connect(small.url);
    const b = http2.connect(small.url);
    try {
      expect(await health(a)).toBe(200);
      expect(await health(b)).toBe(200);
      const ms = await new Promise<number>((done) => {
        const started = performance.now();
        const c = net.connect(small.port, "127.0.0.1");
        c.on("error", () => {});
        c.on("close", () => done(performance.now() - started));
      });
      expect(ms).toBeLessThan(500);
      expect(await health(a)).toBe(200);
      expect(await health(b)).toBe(200);
    } finally {
      a.destroy();
      b.destroy();
      await small.close();
    }
  });
});

describe("HTTP/2 denial-of-service fixes in this Node build", () => {
  /** True when version a >= b (dotted numbers). */
  const atLeast = (a: string, b: string) => {
    const x = a.split(".").map(Number);
    const y = b.split(".").map(Number);
    for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
    return true;
  };

  it("has the fixes for rapid reset (CVE-2023-44487) and CONTINUATION floods (CVE-2024-27983, CVE-2024-28182)", () => {
    // nghttp2 1.57.0 limits stream resets (rapid reset); 1.61.0 limits CONTINUATION frames.
    expect(atLeast(process.versions.nghttp2 ?? "0", "1.61.0")).toBe(true);
    // Node's own releases with both fixes: 18.20.1, 20.12.1, 21.7.2; every 22+ release has them.
    const node = process.versions.node;
    const fixed: Record<string, string> = { "18": "18.20.1", "20": "20.12.1", "21": "21.7.2" };
    const major = node.split(".")[0];
    expect(Number(major) >= 22 || (fixed[major] !== undefined && atLeast(node, fixed[major]))).toBe(true);
  });

  it("survives a rapid-reset burst and keeps serving other clients", async () => {
    const attacker = http2.connect(server.url, { peerMaxConcurrentStreams: 100_000 });
    attacker.on("error", () => {});
    for (let i = 0; i < 5000 && !attacker.destroyed; i++) {
      const s = attacker.request({
        ":method": "POST",
        ":path": "/user.v1.UserService/GetUser",
        "content-type": "application/grpc",
      });
      s.on("error", () => {});
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    await new Promise((r) => setTimeout(r, 500));
    attacker.destroy();
    const other = http2.connect(server.url);
    const status = await new Promise<number>((done, fail) => {
      const req = other.request({ ":path": "/healthz" });
      req.on("response", (h) => done(Number(h[":status"])));
      req.on("error", fail);
      req.resume();
      req.end();
    });
    other.destroy();
    expect(status).toBe(200);
  });
});
