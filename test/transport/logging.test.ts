/**
 * The access log, as an operator greps it: after a run of logins (good and bad), user management and
 * token checks over several protocols, and server streams (completed, failed, cancelled), every call left exactly one JSON line with method, protocol, code,
 * durationMs and requestId (the caller's x-request-id when it sent a sane one, echoed back), and no
 * password, token or password hash appears anywhere in the log text.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserService, WatchEventType } from "../../gen/user/v1/user_service_pb.js";
import { uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { forge, validClaims } from "../helpers/tokens.ts";

let server: TestServer;
let grpc: GrpcJs;

/** Every secret that went over the wire during the run. */
const secrets: string[] = [];
/** The calls made: our request id, and what the log line must say. */
const expected: { requestId: string; method: string; protocol: string; code: string }[] = [];

function rid(): string {
  return `test-${randomUUID()}`;
}

const protocolOf: Record<TransportName, string> = {
  grpc: "grpc",
  "connect-h1": "connect",
  "connect-h2": "connect",
  "connect-json-h1": "connect",
  "grpc-web-h1": "grpc-web",
  "grpc-web-h2": "grpc-web",
};

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);

  // Login over grpc-js, then the admin's token is used everywhere.
  let id = rid();
  const login = await grpc.call(AuthService.method.login, ADMIN, undefined, { "x-request-id": id });
  expected.push({ requestId: id, method: "auth.v1.AuthService/Login", protocol: "grpc", code: "OK" });
  const admin = login.tokens?.accessToken ?? "";
  secrets.push(ADMIN.password, admin, login.tokens?.refreshToken ?? "");

  // A failed login (wrong password) over Connect JSON.
  id = rid();
  const wrong = `wrong-${randomUUID()}`;
  secrets.push(wrong);
  await failure(
    clients(server.url, "connect-json-h1").auth.login(
      { email: ADMIN.email, password: wrong },
      { headers: { "x-request-id": id } },
    ),
  );
  expected.push({ requestId: id, method: "auth.v1.AuthService/Login", protocol: "connect", code: "UNAUTHENTICATED" });

  // CreateUser with a password, then that user logs in, over each protocol.
  for (const name of ["connect-h2", "grpc-web-h1", "connect-h1"] as TransportName[]) {
    const c = clients(server.url, name, () => admin);
    const password = `secret-${randomUUID()}`;
    const email = uniqueEmail(`log-${name}`);
    secrets.push(password);
    id = rid();
    await c.users.createUser({ user: { email, displayName: "Logged" }, password }, { headers: { "x-request-id": id } });
    expected.push({ requestId: id, method: "user.v1.UserService/CreateUser", protocol: protocolOf[name], code: "OK" });
    id = rid();
    const res = await c.auth.login({ email, password }, { headers: { "x-request-id": id } });
    expected.push({ requestId: id, method: "auth.v1.AuthService/Login", protocol: protocolOf[name], code: "OK" });
    secrets.push(res.tokens?.accessToken ?? "", res.tokens?.refreshToken ?? "");
    id = rid();
    await clients(server.url, name, () => res.tokens?.accessToken).auth.getCurrentUser(
      {},
      { headers: { "x-request-id": id } },
    );
    expected.push({
      requestId: id,
      method: "auth.v1.AuthService/GetCurrentUser",
      protocol: protocolOf[name],
      code: "OK",
    });
  }

  // Refused calls: a forged token, and a validation failure.
  const forged = forge({ ...validClaims(randomUUID(), "ROLE_ADMIN"), iss: "mallory" });
  secrets.push(forged);
  id = rid();
  await failure(grpc.call(UserService.method.getUser, { userId: randomUUID() }, forged, { "x-request-id": id }));
  expected.push({ requestId: id, method: "user.v1.UserService/GetUser", protocol: "grpc", code: "UNAUTHENTICATED" });
  id = rid();
  await failure(grpc.call(UserService.method.getUser, { userId: "nope" }, admin, { "x-request-id": id }));
  expected.push({ requestId: id, method: "user.v1.UserService/GetUser", protocol: "grpc", code: "INVALID_ARGUMENT" });

  // Server streams: read to the end, failing, and cancelled by the client while open.
  const streams = clients(server.url, "connect-h2", () => admin);
  id = rid();
  for await (const _ of streams.users.streamUsers({}, { headers: { "x-request-id": id } }));
  expected.push({ requestId: id, method: "user.v1.UserService/StreamUsers", protocol: "connect", code: "OK" });
  id = rid();
  await failure(
    (async () => {
      for await (const _ of streams.users.watchUsers(
        { resumeToken: "not-a-token" },
        { headers: { "x-request-id": id } },
      ));
    })(),
  );
  expected.push({
    requestId: id,
    method: "user.v1.UserService/WatchUsers",
    protocol: "connect",
    code: "INVALID_ARGUMENT",
  });
  id = rid();
  const cancel = new AbortController();
  const watch = clients(server.url, "grpc", () => admin).users.watchUsers(
    { sendInitial: true },
    { headers: { "x-request-id": id }, signal: cancel.signal },
  );
  const ended = await (async () => {
    for await (const event of watch) if (event.type === WatchEventType.SYNCED) cancel.abort();
  })().then(
    () => Code.Unknown,
    (e: unknown) => ConnectError.from(e).code,
  );
  expect(ended).toBe(Code.Canceled);
  expected.push({ requestId: id, method: "user.v1.UserService/WatchUsers", protocol: "grpc", code: "CANCELED" });
  // The server logs a cancelled stream once it notices: wait for it.
  const cancelled = id;
  for (let waited = 0; waited < 2000 && !rpcLines().some((l) => l.requestId === cancelled); waited += 20)
    await new Promise((r) => setTimeout(r, 20));

  // Password hashes must not leak either.
  for (const r of await query<{ h: string }>(
    server.databaseUrl,
    "select password_hash as h from users where password_hash is not null",
  )) {
    secrets.push(r.h);
  }
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

/** The access-log lines (those that describe a call). */
function rpcLines(): Record<string, unknown>[] {
  return server.logs.filter((l) => typeof l.method === "string" && "durationMs" in l);
}

describe("the access log", () => {
  it("has exactly one line per call, with method, protocol, code, durationMs and the caller's requestId", () => {
    const lines = rpcLines();
    for (const call of expected) {
      const mine = lines.filter((l) => l.requestId === call.requestId);
      expect(mine, call.requestId).toHaveLength(1);
      expect(mine[0]).toMatchObject({ method: call.method, protocol: call.protocol, code: call.code });
      expect(typeof mine[0].durationMs).toBe("number");
      expect(mine[0].durationMs as number).toBeGreaterThanOrEqual(0);
    }
  });

  it("names the caller of authenticated calls", () => {
    const line = rpcLines().find((l) => l.method === "auth.v1.AuthService/GetCurrentUser");
    expect(line?.userId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("generates a request id when the caller sends none (or an unsafe one), and echoes it", async () => {
    const before = rpcLines().length;
    let echoed: string | null = null;
    await clients(server.url, "connect-h1").auth.login(ADMIN, { onHeader: (h) => (echoed = h.get("x-request-id")) });
    await failure(
      clients(server.url, "connect-h1").auth.getCurrentUser({}, { headers: { "x-request-id": "bad id\twith spaces" } }),
    );
    const fresh = rpcLines().slice(before);
    expect(fresh).toHaveLength(2);
    for (const l of fresh) {
      expect(typeof l.requestId).toBe("string");
      expect(l.requestId).not.toBe("");
      expect(l.requestId).not.toContain(" ");
    }
    expect(echoed).toBe(fresh[0].requestId);
  });

  it("contains no password, token or password hash anywhere", () => {
    const text = server.logText();
    expect(secrets.length).toBeGreaterThan(10);
    for (const s of secrets) {
      expect(s.length).toBeGreaterThan(7);
      expect(text.includes(s), `log contains a secret starting ${s.slice(0, 6)}`).toBe(false);
    }
    // Not even a piece of a JWT (header.payload) or a bearer header.
    expect(text).not.toMatch(/eyJ[\w-]{10,}\.eyJ/);
    expect(text.toLowerCase()).not.toContain("bearer ");
    expect(text).not.toContain("$argon2");
  });

  it("is JSON on every line", () => {
    const lines = server.logText().split("\n");
    expect(lines.length).toBeGreaterThan(expected.length);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  });
});
