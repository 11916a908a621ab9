/**
 * Admission before the body is read, and request bodies that never end, over the wire on every serving
 * path: the unary fast path (HTTP/2 and HTTP/1.1), the server-stream path and connect-node's adapter
 * (compressed gRPC, Connect GET, client streams). A refused call is answered in its own protocol while its
 * body is still arriving, and is never run; a body over the limit is answered RESOURCE_EXHAUSTED at once and
 * its stream reset (its connection closed on HTTP/1.1) instead of being drained forever.
 *
 * The server is the real listener and RPC handler (src/transport/server.ts, src/transport/rpc-handler.ts) with an
 * admit function of the test's own and a UserService that counts the calls it runs.
 */
import http2 from "node:http2";
import net from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, type ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GetUserRequestSchema, UserService } from "../../gen/user/v1/user_service_pb.js";
import { connectErrorFor } from "../../src/rpc/wire-error.ts";
import { createRpcHandler } from "../../src/transport/rpc-handler.ts";
import { type ListeningServer, listen } from "../../src/transport/server.ts";

const READ_MAX = 64 * 1024;
const ran = { getUser: 0, watchUsers: 0, importUsers: 0 };
const admitted: { path: string; peer: string }[] = [];

/** Refuses calls carrying `x-deny` (with a promise when it says "later"), as a rate limiter would. */
function admit(call: { path: string; header: (name: string) => string | undefined; peer: string }) {
  admitted.push({ path: call.path, peer: call.peer });
  const deny = call.header("x-deny");
  if (deny === undefined) return undefined;
  const err: ConnectError = connectErrorFor("RATE_LIMITED", Code.ResourceExhausted, "too many requests");
  return deny === "later" ? new Promise<ConnectError>((r) => setTimeout(() => r(err), 20)) : err;
}

const routes = (router: ConnectRouter) =>
  router.service(UserService, {
    async getUser(req) {
      ran.getUser++;
      return { user: { id: req.userId } };
    },
    async *watchUsers() {
      ran.watchUsers++;
      yield* [];
    },
    async importUsers(reqs) {
      ran.importUsers++;
      for await (const _ of reqs);
      return {};
    },
  });

let server: ListeningServer;
let url: string;
beforeAll(async () => {
  const { handle, h2Stream } = createRpcHandler(routes, { interceptors: [], readMaxBytes: READ_MAX, admit });
  server = await listen({
    host: "127.0.0.1",
    port: 0,
    rpc: handle,
    h2Stream,
    routes: [],
    corsAllowedOrigins: [],
    limits: { maxConcurrentStreams: 100, headersTimeoutMs: 10_000, idleTimeoutMs: 60_000, maxConnections: 100 },
  });
  url = `http://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server?.stopAccepting();
  server?.destroyConnections();
});
beforeEach(() => {
  ran.getUser = ran.watchUsers = ran.importUsers = 0;
  admitted.length = 0;
});

/** What an HTTP/2 exchange that never ends its request saw: headers, trailers, and how its stream closed. */
interface Exchange {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  rstCode: number;
  ms: number;
}

/**
 * Sends `headers`, then `body` in 16 KiB pieces, without ever ending the request; resolves when the
 * server has closed the stream (answered, then reset it) or after 5 s.
 */
function neverEnding(path: string, headers: Record<string, string>, body: Buffer): Promise<Exchange> {
  return new Promise((done) => {
    const session = http2.connect(url);
    session.on("error", () => {});
    const started = performance.now();
    const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const seen: Exchange = { headers: {}, trailers: {}, rstCode: -1, ms: 0 };
    req.on("response", (h) => (seen.headers = h));
    req.on("trailers", (t) => (seen.trailers = t));
    req.on("error", () => {});
    req.resume();
    for (let at = 0; at < body.length; at += 16 * 1024) req.write(body.subarray(at, at + 16 * 1024));
    const finish = () => {
      clearTimeout(timer);
      seen.rstCode = req.rstCode ?? -1;
      seen.ms = performance.now() - started;
      session.destroy();
      done(seen);
    };
    const timer = setTimeout(finish, 5000);
    req.on("close", finish);
  });
}

/** A gRPC envelope header announcing `length` bytes, followed by `length` bytes (the caller sends part). */
function announced(length: number, flag = 0): Buffer {
  const out = Buffer.alloc(5 + length, 0x41);
  out[0] = flag;
  out.writeUInt32BE(length, 1);
  return out;
}

const grpcStatus = (e: Exchange) => Number(e.trailers["grpc-status"] ?? e.headers["grpc-status"]);
const THREE_MIB = 3 * 1024 * 1024;

describe("admit refuses a call before its body is read", () => {
  it("unary fast path, HTTP/2 (gRPC): answered while a 3 MiB body is still arriving; never run", async () => {
    const e = await neverEnding(
      "/user.v1.UserService/GetUser",
      { "content-type": "application/grpc", "x-deny": "1" },
      announced(THREE_MIB),
    );
    expect(grpcStatus(e)).toBe(Code.ResourceExhausted);
    expect(e.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(e.ms).toBeLessThan(2000);
    expect(ran.getUser).toBe(0);
    expect(admitted).toEqual([{ path: "/user.v1.UserService/GetUser", peer: "127.0.0.1" }]);
  });

  it("also when the check answers later (a promise)", async () => {
    const e = await neverEnding(
      "/user.v1.UserService/GetUser",
      { "content-type": "application/grpc", "x-deny": "later" },
      announced(THREE_MIB),
    );
    expect(grpcStatus(e)).toBe(Code.ResourceExhausted);
    expect(ran.getUser).toBe(0);
  });

  it("server-stream path (gRPC WatchUsers)", async () => {
    const e = await neverEnding(
      "/user.v1.UserService/WatchUsers",
      { "content-type": "application/grpc", "x-deny": "1" },
      announced(THREE_MIB),
    );
    expect(grpcStatus(e)).toBe(Code.ResourceExhausted);
    expect(e.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(ran.watchUsers).toBe(0);
  });

  it("connect-node's adapter (gzip-compressed gRPC, and a client stream)", async () => {
    for (const path of ["/user.v1.UserService/GetUser", "/user.v1.UserService/ImportUsers"]) {
      const e = await neverEnding(
        path,
        { "content-type": "application/grpc", "grpc-encoding": "gzip", "x-deny": "1" },
        announced(THREE_MIB, 1),
      );
      expect(grpcStatus(e), path).toBe(Code.ResourceExhausted);
      expect(e.rstCode, path).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(e.ms, path).toBeLessThan(2000);
    }
    expect(ran.getUser + ran.importUsers).toBe(0);
  });

  it("Connect GET, whose message is in the URL", async () => {
    const res = await fetch(`${url}/user.v1.UserService/GetUser?connect=v1&encoding=json&message=%7B%7D`, {
      headers: { "x-deny": "1" },
    });
    expect(res.status).toBe(429);
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    expect(ran.getUser).toBe(0);
  });

  it("unary fast path, HTTP/1.1 (Connect): 429 while the body arrives, then the connection closes", async () => {
    const { head, closed } = await http1NeverEnding("/user.v1.UserService/GetUser", "application/proto", {
      "x-deny": "1",
    });
    expect(head).toMatch(/^HTTP\/1\.1 429/);
    expect(head.toLowerCase()).toContain("connection: close");
    expect(closed).toBe(true);
    expect(ran.getUser).toBe(0);
  });

  it("lets an admitted call through, with the path and peer address", async () => {
    const users = createClient(UserService, createGrpcTransport({ baseUrl: url }));
    const res = await users.getUser(create(GetUserRequestSchema, { userId: "u1" }));
    expect(res.user?.id).toBe("u1");
    expect(ran.getUser).toBe(1);
    expect(admitted).toEqual([{ path: "/user.v1.UserService/GetUser", peer: "127.0.0.1" }]);
  });
});

/**
 * POSTs a chunked HTTP/1.1 request that never ends (16 KiB pieces for up to 3 s); resolves with the
 * response head and whether the server closed the connection.
 */
function http1NeverEnding(
  path: string,
  type: string,
  headers: Record<string, string> = {},
): Promise<{ head: string; closed: boolean }> {
  return new Promise((done) => {
    const socket = net.connect(Number(new URL(url).port), "127.0.0.1");
    let text = "";
    const piece = `4000\r\n${"A".repeat(0x4000)}\r\n`;
    const pump = setInterval(() => socket.writable && socket.write(piece), 5);
    const finish = (closed: boolean) => {
      clearInterval(pump);
      clearTimeout(timer);
      socket.destroy();
      done({ head: text.split("\r\n\r\n")[0], closed });
    };
    const timer = setTimeout(() => finish(false), 3000);
    socket.on("data", (c) => (text += c.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => finish(true));
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nTransfer-Encoding: chunked\r\n${extra.join("")}\r\n`,
    );
  });
}

describe("a body over MAX_MESSAGE_BYTES that never ends", () => {
  it("unary fast path, HTTP/2: RESOURCE_EXHAUSTED at once, then the stream is reset", async () => {
    const e = await neverEnding(
      "/user.v1.UserService/GetUser",
      { "content-type": "application/grpc" },
      announced(THREE_MIB),
    );
    expect(grpcStatus(e)).toBe(Code.ResourceExhausted);
    expect(e.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(e.ms).toBeLessThan(2000);
    expect(ran.getUser).toBe(0);
  });

  it("server-stream path", async () => {
    const e = await neverEnding(
      "/user.v1.UserService/WatchUsers",
      { "content-type": "application/grpc" },
      announced(THREE_MIB),
    );
    expect(grpcStatus(e)).toBe(Code.ResourceExhausted);
    expect(e.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("connect-node's adapter (gzip-compressed gRPC)", async () => {
    const e = await neverEnding(
      "/user.v1.UserService/GetUser",
      { "content-type": "application/grpc", "grpc-encoding": "gzip" },
      announced(THREE_MIB, 1),
    );
    expect(grpcStatus(e)).toBe(Code.ResourceExhausted);
    expect(e.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(e.ms).toBeLessThan(2000);
  });

  it("HTTP/1.1, fast path and adapter: 429, then the connection closes", async () => {
    // application/proto is the fast path's; a gzip-encoded body goes to connect-node's adapter.
    for (const headers of [{}, { "content-encoding": "gzip" }] as Record<string, string>[]) {
      const { head, closed } = await http1NeverEnding("/user.v1.UserService/GetUser", "application/proto", headers);
      expect(head).toMatch(/^HTTP\/1\.1 429/);
      expect(closed).toBe(true);
    }
    expect(ran.getUser).toBe(0);
  });

  it("a body within the limit is still served (gRPC, fast path and gzip through the adapter)", async () => {
    const plain = createClient(UserService, createGrpcTransport({ baseUrl: url }));
    const gzip = createClient(
      UserService,
      createGrpcTransport({ baseUrl: url, sendCompression: compressionGzip, compressMinBytes: 0 }),
    );
    const id = "x".repeat(READ_MAX / 2);
    expect((await plain.getUser({ userId: id })).user?.id).toBe(id);
    expect((await gzip.getUser({ userId: id })).user?.id).toBe(id);
    expect(ran.getUser).toBe(2);
  });
});
