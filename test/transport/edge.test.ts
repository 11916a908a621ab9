/**
 * What arrives at the edge of the server before any handler runs: unknown methods (UNIMPLEMENTED),
 * undecodable request bytes (INVALID_ARGUMENT, never INTERNAL), messages over MAX_MESSAGE_BYTES and gzip
 * bodies that inflate past it (RESOURCE_EXHAUSTED, and the server keeps serving), gzip accepted on every
 * protocol, and RPCs whose implementation is still being written (they must not take the server down).
 */
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService, LoginRequestSchema } from "../../gen/auth/v1/auth_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, failure, type TransportName } from "../helpers/clients.ts";
import { fromGrpcJsError } from "../helpers/grpc-js.ts";
import { grpcFrame, grpcRaw, grpcStatusOf, grpcTrailersOf, type Http2Answer, http2Post } from "../helpers/raw.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const loginPath = "/auth.v1.AuthService/Login";

/** Sends raw bytes as one unary request with grpc-js (identity (de)serializers); returns the error. */
function grpcJsRaw(port: number, path: string, payload: Buffer): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((done) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      payload,
      new grpc.Metadata(),
      (err) => {
        client.close();
        done(err);
      },
    );
  });
}

/** The ErrorInfo reason in a raw gRPC or gRPC-web answer's grpc-status-details-bin. */
function rawReason(a: Http2Answer): string | undefined {
  const bin = grpcTrailersOf(a)["grpc-status-details-bin"];
  if (bin === undefined) return undefined;
  const status = fromBinary(StatusSchema, Buffer.from(bin, "base64"));
  const info = status.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"));
  return info && fromBinary(ErrorInfoSchema, info.value).reason;
}

/** The Connect JSON error of a fetch response: HTTP status, code and ErrorInfo reason. */
async function connectError(res: Response): Promise<{ status: number; code: string; reason: string | undefined }> {
  const json = (await res.json()) as { code: string; details?: { type: string; value: string }[] };
  const info = json.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  return {
    status: res.status,
    code: json.code,
    reason: info && fromBinary(ErrorInfoSchema, Buffer.from(info.value, "base64")).reason,
  };
}

async function stillServing(url: string): Promise<void> {
  const res = await clients(url, "grpc").auth.login(ADMIN);
  expect(res.user?.email).toBe(ADMIN.email);
}

describe("an unknown method", () => {
  it.each(["/user.v1.UserService/NoSuchMethod", "/nope.v1.NopeService/Do"])(
    "is UNIMPLEMENTED over gRPC (grpc-js): %s",
    async (path) => {
      const err = await grpcJsRaw(server.port, path, Buffer.alloc(0));
      expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
    },
  );

  it("is UNIMPLEMENTED over gRPC for a connect-node client", async () => {
    const t = createGrpcTransport({ baseUrl: server.url });
    const method = { ...AuthService.method.getCurrentUser, name: "NoSuchMethod" };
    const f = await t
      .unary(method as typeof AuthService.method.getCurrentUser, undefined, undefined, undefined, {})
      .catch((e: unknown) => ConnectError.from(e));
    expect((f as ConnectError).code).toBe(Code.Unimplemented);
  });

  it("is UNIMPLEMENTED over gRPC (raw HTTP/2)", async () => {
    const a = await grpcRaw(server.url, "/user.v1.UserService/NoSuchMethod", grpcFrame(new Uint8Array()));
    expect(grpcStatusOf(a).status).toBe(Code.Unimplemented);
  });

  it("is UNIMPLEMENTED over gRPC-web", async () => {
    const a = await http2Post(
      server.url,
      "/user.v1.UserService/NoSuchMethod",
      { "content-type": "application/grpc-web+proto" },
      grpcFrame(new Uint8Array()),
    );
    expect(grpcStatusOf(a).status).toBe(Code.Unimplemented);
  });

  it.each([
    ["Connect JSON", "application/json", "{}"],
    ["Connect binary", "application/proto", ""],
  ])("is unimplemented (HTTP 404) over %s", async (_name, type, body) => {
    const res = await fetch(`${server.url}/user.v1.UserService/NoSuchMethod`, {
      method: "POST",
      headers: { "content-type": type },
      body,
    });
    const e = await connectError(res);
    expect([e.status, e.code]).toEqual([404, "unimplemented"]);
  });

  it("is unimplemented for a connect-node client", async () => {
    const t = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
    const method = { ...AuthService.method.getCurrentUser, name: "NoSuchMethod" };
    const f = await t
      .unary(method as typeof AuthService.method.getCurrentUser, undefined, undefined, undefined, {})
      .catch((e: unknown) => ConnectError.from(e));
    expect((f as ConnectError).code).toBe(Code.Unimplemented);
  });
});

describe("undecodable request bytes", () => {
  const garbage = [
    ["a truncated field", Buffer.from([0x0a, 0x05, 0x61, 0x62])],
    ["an invalid wire type", Buffer.from([0x0f, 0x01])],
    ["invalid UTF-8 in a string", Buffer.from([0x0a, 0x02, 0xff, 0xfe])],
  ] as const;

  it.each(garbage)("are INVALID_ARGUMENT over gRPC (raw HTTP/2): %s", async (_name, bytes) => {
    const a = await grpcRaw(server.url, loginPath, grpcFrame(bytes));
    expect(grpcStatusOf(a).status).toBe(Code.InvalidArgument);
    expect(rawReason(a)).toBe("INVALID_ARGUMENT");
  });

  it.each(garbage)("are INVALID_ARGUMENT over gRPC (grpc-js): %s", async (_name, bytes) => {
    const err = await grpcJsRaw(server.port, loginPath, bytes);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err && (await failure(Promise.reject(fromGrpcJsError(err)))).reason).toBe("INVALID_ARGUMENT");
  });

  it.each(garbage)("are INVALID_ARGUMENT over Connect binary (fetch): %s", async (_name, bytes) => {
    const res = await fetch(`${server.url}${loginPath}`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: bytes,
    });
    const e = await connectError(res);
    expect(e).toEqual({ status: 400, code: "invalid_argument", reason: "INVALID_ARGUMENT" });
  });

  it("are INVALID_ARGUMENT over Connect JSON when the JSON is not a LoginRequest", async () => {
    for (const body of ["{", '{"email": 42}', '{"noSuchField": "x"}']) {
      const res = await fetch(`${server.url}${loginPath}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      expect(await connectError(res), body).toEqual({
        status: 400,
        code: "invalid_argument",
        reason: "INVALID_ARGUMENT",
      });
    }
  });

  it("are INVALID_ARGUMENT over gRPC-web", async () => {
    const a = await http2Post(
      server.url,
      loginPath,
      { "content-type": "application/grpc-web+proto" },
      grpcFrame(garbage[0][1]),
    );
    expect(grpcStatusOf(a).status).toBe(Code.InvalidArgument);
    expect(rawReason(a)).toBe("INVALID_ARGUMENT");
  });

  it("leave the server serving", () => stillServing(server.url));
});

describe("gzip", () => {
  it.each<[string, () => ReturnType<typeof createGrpcTransport>]>([
    ["gRPC", () => createGrpcTransport({ baseUrl: server.url, sendCompression: compressionGzip, compressMinBytes: 0 })],
    [
      "Connect binary",
      () =>
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "2",
          useBinaryFormat: true,
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
    ],
    [
      "Connect JSON",
      () =>
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
    ],
    [
      "gRPC-web",
      () =>
        createGrpcWebTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
    ],
  ])("is accepted for requests over %s", async (_name, make) => {
    const res = await createClient(AuthService, make()).login(ADMIN);
    expect(res.user?.email).toBe(ADMIN.email);
  });

  it("is accepted from grpc-js", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": 2,
    });
    const res = await new Promise<Buffer>((done, fail) => {
      client.makeUnaryRequest(
        loginPath,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(toBinary(LoginRequestSchema, create(LoginRequestSchema, ADMIN))),
        (err, value) => (err ? fail(err) : done(value as Buffer)),
      );
    });
    client.close();
    expect(res.byteLength).toBeGreaterThan(0);
  });
});

describe("with a small MAX_MESSAGE_BYTES", () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startTestServer({ MAX_MESSAGE_BYTES: "1024" });
  });
  afterAll(() => small?.close());

  const big = { email: ADMIN.email, password: "p".repeat(2000) };

  it.each<TransportName>(["grpc", "connect-h1", "connect-h2", "connect-json-h1", "grpc-web-h1"])(
    "a request over the limit is RESOURCE_EXHAUSTED over %s",
    async (name) => {
      const f = await failure(clients(small.url, name).auth.login(big));
      expect(f.code).toBe(Code.ResourceExhausted);
    },
  );

  it("a request over the limit is RESOURCE_EXHAUSTED over grpc-js, with an ErrorInfo", async () => {
    const bytes = Buffer.from(toBinary(LoginRequestSchema, create(LoginRequestSchema, big)));
    const err = await grpcJsRaw(small.port, loginPath, bytes);
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err && (await failure(Promise.reject(fromGrpcJsError(err)))).domain).toBeTruthy();
  });

  it("a request under the limit is served", () => stillServing(small.url));

  it("a gzip body under the limit that inflates past it is RESOURCE_EXHAUSTED over gRPC", async () => {
    const inflated = toBinary(
      LoginRequestSchema,
      create(LoginRequestSchema, { email: ADMIN.email, password: "a".repeat(100_000) }),
    );
    const compressed = gzipSync(inflated);
    expect(compressed.byteLength).toBeLessThan(1024);
    const a = await grpcRaw(small.url, loginPath, grpcFrame(compressed, true), { "grpc-encoding": "gzip" });
    expect(grpcStatusOf(a).status).toBe(Code.ResourceExhausted);
  });
});

describe("a compression bomb", () => {
  // 16 MiB of zeros gzip to ~16 KiB: far under the 4 MiB default limit, four times over it once inflated.
  const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024));

  it("is RESOURCE_EXHAUSTED over gRPC (raw HTTP/2), several at once, and the server keeps serving", async () => {
    expect(bomb.byteLength).toBeLessThan(4 * 1024 * 1024);
    const answers = await Promise.all(
      Array.from({ length: 4 }, () =>
        grpcRaw(server.url, loginPath, grpcFrame(bomb, true), { "grpc-encoding": "gzip" }),
      ),
    );
    for (const a of answers) expect(grpcStatusOf(a).status).toBe(Code.ResourceExhausted);
    await stillServing(server.url);
  });

  it("is RESOURCE_EXHAUSTED over Connect (Content-Encoding: gzip), and the server keeps serving", async () => {
    const res = await fetch(`${server.url}${loginPath}`, {
      method: "POST",
      headers: { "content-type": "application/proto", "content-encoding": "gzip" },
      body: bomb,
    });
    const e = await connectError(res);
    expect(e.code).toBe("resource_exhausted");
    expect(e.status).toBe(429);
    await stillServing(server.url);
  });

  it("is RESOURCE_EXHAUSTED over gRPC-web, and the server keeps serving", async () => {
    const a = await http2Post(
      server.url,
      loginPath,
      { "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" },
      grpcFrame(bomb, true),
    );
    expect(grpcStatusOf(a).status).toBe(Code.ResourceExhausted);
    await stillServing(server.url);
  });
});

describe("RPCs still being implemented", () => {
  let member: Member;
  beforeAll(async () => {
    member = await createMember(server.url, admin, { prefix: "wip" });
  });

  /** Settles a call within `ms` (aborting it then); returns the error code, or "ok". */
  async function settle(run: (signal: AbortSignal) => Promise<unknown>, ms = 1500): Promise<string> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), ms);
    try {
      await run(ac.signal);
      return "ok";
    } catch (err) {
      return Code[ConnectError.from(err).code];
    } finally {
      clearTimeout(timer);
    }
  }

  it("do not take the server down, whatever they answer", async () => {
    const c = clients(server.url, "connect-h2", () => admin);
    const m = clients(server.url, "connect-h2", () => member.token);
    const outcomes = await Promise.all([
      settle((signal) => c.users.listUsers({ pageSize: 5 }, { signal })),
      settle(async (signal) => {
        for await (const _ of c.users.streamUsers({}, { signal }));
      }),
      settle(async (signal) => {
        for await (const _ of c.users.watchUsers({ sendInitial: true }, { signal })) break;
      }),
      settle((signal) => c.users.importUsers((async function* () {})(), { signal })),
      settle((signal) =>
        c.auth.signUp(
          { email: `wip-${Date.now()}@example.com`, password: "password-wip-123", displayName: "Wip" },
          { signal },
        ),
      ),
      settle((signal) => c.auth.refreshToken({ refreshToken: "not-a-refresh-token" }, { signal })),
      settle((signal) => c.auth.logout({ refreshToken: "not-a-refresh-token" }, { signal })),
      settle((signal) =>
        m.auth.changePassword({ currentPassword: "wrong-password", newPassword: "new-password-123" }, { signal }),
      ),
    ]);
    expect(outcomes).toHaveLength(8);
    await stillServing(server.url);
    const me = await clients(server.url, "grpc", () => admin).users.getUser({ userId: member.user.id });
    expect(me.user?.id).toBe(member.user.id);
  });

  it("still need a token (no anonymous access to admin RPCs)", async () => {
    const anon = clients(server.url, "connect-h2");
    const f = await failure(anon.users.listUsers({}));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
    const g = await failure(clients(server.url, "connect-h2", () => member.token).users.listUsers({}));
    expect([g.code, g.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
  });
});
