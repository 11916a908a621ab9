/**
 * Mass and malformed input over the wire (OWASP API4, unrestricted resource consumption): messages over
 * MAX_MESSAGE_BYTES (plain and as a gzip bomb), 10,000 labels, a 1 MB display name, a 1 MB password (never
 * hashed), invalid UTF-8 in string fields sent as raw bytes, a 100 KB filter (unary and server-streaming),
 * 10,000 ids, 1,000 malformed ids, a 100 KB label key, 50,000 mask paths (errors echoing those must stay
 * small enough for HTTP/2 trailers).
 * Each gets a clear INVALID_ARGUMENT or RESOURCE_EXHAUSTED carrying an ErrorInfo, and after each the server
 * still answers, and logged no unexpected error.
 */
import { gzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { grpcFrame, grpcRaw, grpcStatusOf } from "../helpers/raw.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let self: Member;
let asSelf: Clients;
let asAdmin: Clients;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  self = await createMember(server.url, admin, { prefix: "mass" });
  asSelf = clients(server.url, "grpc", () => self.token);
  asAdmin = clients(server.url, "grpc", () => admin);
});
afterEach(async () => {
  // The server is unharmed: it still answers, and nothing became an INTERNAL error.
  expect((await grpc.call(UserService.method.getUser, { userId: self.user.id }, self.token)).user?.id).toBe(
    self.user.id,
  );
  expect(server.logText()).not.toContain("unexpected error");
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

const MB = 1024 * 1024;

/** Expects a clear refusal: INVALID_ARGUMENT (with the field named, when given) or RESOURCE_EXHAUSTED. */
async function refused(call: Promise<unknown>, expected: { code: Code; field?: string }): Promise<void> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({
    code: Code[expected.code],
    reason: expected.code === Code.InvalidArgument ? "INVALID_ARGUMENT" : "RESOURCE_EXHAUSTED",
  });
  if (expected.field) expect(f.violations).toContain(expected.field);
  expect(f.message.length).toBeLessThan(2048);
}

const updateSelf = (user: object, paths: string[]) =>
  asSelf.users.updateUser({ user: { id: self.user.id, ...user }, updateMask: { paths } });

describe("a message over MAX_MESSAGE_BYTES (4 MiB)", () => {
  it("is RESOURCE_EXHAUSTED over gRPC and Connect", async () => {
    const huge = "x".repeat(5 * MB);
    await refused(updateSelf({ displayName: huge }, ["display_name"]), { code: Code.ResourceExhausted });
    await refused(
      clients(server.url, "connect-h1", () => self.token).users.updateUser({
        user: { id: self.user.id, displayName: huge },
        updateMask: { paths: ["display_name"] },
      }),
      { code: Code.ResourceExhausted },
    );
    await refused(clients(server.url, "grpc").auth.login({ email: "a@example.com", password: huge }), {
      code: Code.ResourceExhausted,
    });
  });

  it("is RESOURCE_EXHAUSTED when it only gets that big after decompression (a gzip bomb)", async () => {
    const field = Buffer.alloc(64 * MB); // 64 MiB of zeros as the email: ~64 KB compressed
    const header = Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x20]); // field 1, length 64 MiB as a varint
    const bomb = gzipSync(Buffer.concat([header, field]));
    expect(bomb.byteLength).toBeLessThan(MB);
    const a = await grpcRaw(server.url, "/auth.v1.AuthService/Login", grpcFrame(bomb, true), {
      "grpc-encoding": "gzip",
    });
    expect(grpcStatusOf(a).status).toBe(Code.ResourceExhausted);
  });
});

describe("oversized fields under the message limit", () => {
  it("10,000 labels are INVALID_ARGUMENT, for the user and for the admin, and nothing is stored", async () => {
    const labels = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, "v"]));
    await refused(updateSelf({ labels }, ["labels"]), { code: Code.InvalidArgument, field: "user.labels" });
    const email = uniqueEmail("labels");
    await refused(asAdmin.users.createUser({ user: { email, displayName: "Many Labels", labels } }), {
      code: Code.InvalidArgument,
      field: "user.labels",
    });
    expect(await query(server.databaseUrl, "select 1 from users where email = $1", [email])).toHaveLength(0);
  });

  it("a 1 MB display name is INVALID_ARGUMENT on UpdateUser, CreateUser and SignUp", async () => {
    const name = "n".repeat(MB);
    await refused(updateSelf({ displayName: name }, ["display_name"]), {
      code: Code.InvalidArgument,
      field: "user.display_name",
    });
    await refused(asAdmin.users.createUser({ user: { email: uniqueEmail("big"), displayName: name } }), {
      code: Code.InvalidArgument,
      field: "user.display_name",
    });
    await refused(
      clients(server.url, "grpc").auth.signUp({
        email: uniqueEmail("big"),
        password: "long-enough-password",
        displayName: name,
      }),
      { code: Code.InvalidArgument, field: "display_name" },
    );
  });

  it("a 1 MB password is INVALID_ARGUMENT on Login, SignUp and ChangePassword, without being hashed", async () => {
    const pw = "p".repeat(MB);
    const started = performance.now();
    await refused(clients(server.url, "grpc").auth.login({ email: self.email, password: pw }), {
      code: Code.InvalidArgument,
      field: "password",
    });
    await refused(
      clients(server.url, "grpc").auth.signUp({ email: uniqueEmail("pw"), password: pw, displayName: "Pw" }),
      { code: Code.InvalidArgument, field: "password" },
    );
    await refused(asSelf.auth.changePassword({ currentPassword: pw, newPassword: pw }), {
      code: Code.InvalidArgument,
      field: "current_password",
    });
    expect(performance.now() - started).toBeLessThan(3000);
    // Refused before the lockout counted anything.
    expect(
      await query(server.databaseUrl, "select 1 from login_failures where email_key = $1", [self.email.toLowerCase()]),
    ).toHaveLength(0);
  });

  it("a 100 KB filter is INVALID_ARGUMENT on ListUsers, StreamUsers and WatchUsers", async () => {
    const filter = `email = "${"a".repeat(100 * 1024)}"`;
    await refused(asAdmin.users.listUsers({ filter }), { code: Code.InvalidArgument, field: "filter" });
    const drain = async (s: AsyncIterable<unknown>) => {
      for await (const _ of s) break;
    };
    await refused(drain(asAdmin.users.streamUsers({ filter })), { code: Code.InvalidArgument, field: "filter" });
    await refused(drain(asAdmin.users.watchUsers({ filter })), { code: Code.InvalidArgument, field: "filter" });
  });

  it("10,000 ids in BatchGetUsers are INVALID_ARGUMENT", async () => {
    const ids = Array.from({ length: 10_000 }, () => self.user.id);
    await refused(asAdmin.users.batchGetUsers({ userIds: ids }), { code: Code.InvalidArgument, field: "user_ids" });
  });

  it("1,000 malformed ids get an error small enough to travel (not a broken HTTP/2 stream)", async () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `not-a-uuid-${i}`);
    for (const kind of ["grpc", "connect-h1", "connect-h2", "grpc-web-h1", "grpc-web-h2"] as const) {
      const f = await failure(
        clients(server.url, kind, () => admin).users.batchGetUsers({ userIds: ids }, { timeoutMs: 5000 }),
      );
      expect([Code[f.code], f.reason]).toEqual(["InvalidArgument", "INVALID_ARGUMENT"]);
      expect(f.violations.length).toBeGreaterThan(0);
      expect(f.violations.length).toBeLessThanOrEqual(50);
      expect(f.message.length).toBeLessThan(2048);
    }
  });

  it("a 100 KB label key is INVALID_ARGUMENT with a bounded error", async () => {
    const f = await failure(updateSelf({ labels: { ["K".repeat(100 * 1024)]: "v" } }, ["labels"]));
    expect([Code[f.code], f.reason]).toEqual(["InvalidArgument", "INVALID_ARGUMENT"]);
    expect(f.violations[0]?.length).toBeLessThanOrEqual(256);
    expect(f.message.length).toBeLessThan(2048);
  });

  it("50,000 update_mask paths get a refusal of bounded size", async () => {
    const paths = Array.from({ length: 50_000 }, (_, i) => `role${i}`);
    const f = await failure(updateSelf({ displayName: "x" }, paths));
    expect([Code[f.code], f.reason]).toEqual(["PermissionDenied", "PERMISSION_DENIED"]);
    expect(f.message.length).toBeLessThan(2048);
    const g = await failure(
      asAdmin.users.updateUser({ user: { id: self.user.id, displayName: "x" }, updateMask: { paths } }),
    );
    expect([Code[g.code], g.reason]).toEqual(["InvalidArgument", "INVALID_ARGUMENT"]);
    expect(g.message.length).toBeLessThan(2048);
  });
});

/** A protobuf length-delimited field. */
function field(no: number, bytes: Buffer): Buffer {
  if (bytes.byteLength > 127) throw new Error("short fields only");
  return Buffer.concat([Buffer.from([(no << 3) | 2, bytes.byteLength]), bytes]);
}

describe("invalid UTF-8 in a string field (raw bytes)", () => {
  const invalid: [string, number[]][] = [
    ["stray continuation and 0xFF bytes", [0x61, 0xff, 0xfe, 0x80, 0x62]],
    ["an overlong encoding of '/'", [0xc0, 0xaf]],
    ["a UTF-16 surrogate encoded as UTF-8", [0xed, 0xa0, 0x80]],
    ["a truncated three-byte sequence", [0x61, 0xe2, 0x82]],
    ["a five-byte sequence", [0xf8, 0x88, 0x80, 0x80, 0x80]],
    ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
  ];

  it.each(invalid)("is INVALID_ARGUMENT over gRPC: %s in LoginRequest.email", async (_name, bytes) => {
    const body = Buffer.concat([field(1, Buffer.from(bytes)), field(2, Buffer.from("some-password"))]);
    const a = await grpcRaw(server.url, "/auth.v1.AuthService/Login", grpcFrame(body));
    expect(grpcStatusOf(a).status).toBe(Code.InvalidArgument);
    expect(a.trailers["grpc-status-details-bin"] ?? a.headers["grpc-status-details-bin"]).toBeDefined();
  });

  it.each(invalid)("is INVALID_ARGUMENT over Connect: %s in a nested User.display_name", async (_name, bytes) => {
    // UpdateUserRequest { user (1) { id (1), display_name (3) }, update_mask (2) { paths (1) } }
    const user = Buffer.concat([field(1, Buffer.from(self.user.id)), field(3, Buffer.from(bytes))]);
    const body = Buffer.concat([field(1, user), field(2, field(1, Buffer.from("display_name")))]);
    const res = await fetch(`${server.url}/user.v1.UserService/UpdateUser`, {
      method: "POST",
      headers: { "content-type": "application/proto", authorization: `Bearer ${self.token}` },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    const [row] = await query<{ display_name: string }>(
      server.databaseUrl,
      "select display_name from users where id = $1",
      [self.user.id],
    );
    expect(row.display_name).not.toContain("\ufffd");
  });
});
