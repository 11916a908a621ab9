/**
 * CreateUser over @grpc/grpc-js: defaults, password storage, validation with field paths, EMAIL_TAKEN
 * (case-insensitive), admin-only access, and request_id idempotency, sequential and concurrent. Every
 * failure is checked against the rows: a failed call created nothing.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, login, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

const createUser = UserService.method.createUser;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let member: Member;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  member = await createMember(server.url, admin);
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

async function userCount(): Promise<number> {
  return (await query<{ n: number }>(server.databaseUrl, "select count(*)::int as n from users"))[0].n;
}

async function rowsWithEmail(email: string) {
  return query<{ id: string; email: string; password_hash: string | null; role: string; state: string }>(
    server.databaseUrl,
    "select id, email, password_hash, role, state from users where lower(email) = lower($1)",
    [email],
  );
}

describe("CreateUser", () => {
  it("creates an active ROLE_USER with server-assigned id, times and etag, email stored as given", async () => {
    const email = uniqueEmail("Mixed.Case").replace("@example.com", "@Example.COM");
    const res = await grpc.call(
      createUser,
      { user: { email, displayName: "Ada Lovelace", labels: { team: "core", "cost-center": "42" } } },
      admin,
    );
    const u = res.user;
    expect(u?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(u?.email).toBe(email);
    expect(u?.displayName).toBe("Ada Lovelace");
    expect(u?.role).toBe(Role.USER);
    expect(u?.state).toBe(UserState.ACTIVE);
    expect(u?.labels).toEqual({ team: "core", "cost-center": "42" });
    expect(u?.createTime).toBeDefined();
    expect(u?.updateTime).toBeDefined();
    expect(u?.deleteTime).toBeUndefined();
    expect(u?.etag).not.toBe("");
    const rows = await rowsWithEmail(email);
    expect(rows).toEqual([{ id: u?.id, email, password_hash: null, role: "user", state: "active" }]);
  });

  it("ignores output-only fields sent by the caller (id, state, etag)", async () => {
    const email = uniqueEmail("outonly");
    const forcedId = randomUUID();
    const res = await grpc.call(
      createUser,
      { user: { id: forcedId, email, displayName: "X", state: UserState.SUSPENDED, etag: 'W/"99"' } },
      admin,
    );
    expect(res.user?.id).not.toBe(forcedId);
    expect(res.user?.state).toBe(UserState.ACTIVE);
    expect(res.user?.etag).not.toBe('W/"99"');
  });

  it("creates an admin when asked for ROLE_ADMIN", async () => {
    const email = uniqueEmail("second-admin");
    const res = await grpc.call(createUser, { user: { email, displayName: "Second Admin", role: Role.ADMIN } }, admin);
    expect(res.user?.role).toBe(Role.ADMIN);
    expect((await rowsWithEmail(email))[0].role).toBe("admin");
  });

  it("stores only an argon2id hash of the password, and the user can log in with it", async () => {
    const email = uniqueEmail("with-password");
    const password = "correct horse battery staple";
    await grpc.call(createUser, { user: { email, displayName: "Pw" }, password }, admin);
    const [row] = await rowsWithEmail(email);
    expect(row.password_hash).toMatch(/^\$argon2id\$/);
    expect(row.password_hash).not.toContain(password);
    expect(await login(server.url, email, password)).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  const long = (n: number) => "x".repeat(n);
  it.each([
    { name: "no user", req: {}, field: "user" },
    { name: "no email", req: { user: { displayName: "D" } }, field: "user.email" },
    { name: "an invalid email", req: { user: { email: "not-an-email", displayName: "D" } }, field: "user.email" },
    {
      name: "an email over 254 chars",
      req: { user: { email: `${long(250)}@example.com`, displayName: "D" } },
      field: "user.email",
    },
    { name: "no display_name", req: { user: { email: "nd@example.com" } }, field: "user.display_name" },
    {
      name: "a display_name of 101 chars",
      req: { user: { email: "dn@example.com", displayName: long(101) } },
      field: "user.display_name",
    },
    {
      name: "a password of 7 chars",
      req: { user: { email: "pw7@example.com", displayName: "D" }, password: "1234567" },
      field: "password",
    },
    {
      name: "a password of 129 chars",
      req: { user: { email: "pw129@example.com", displayName: "D" }, password: long(129) },
      field: "password",
    },
    {
      name: "a request_id that is not a UUID",
      req: { user: { email: "rid@example.com", displayName: "D" }, requestId: "abc" },
      field: "request_id",
    },
    {
      name: "an undefined role",
      req: { user: { email: "role@example.com", displayName: "D", role: 7 as Role } },
      field: "user.role",
    },
    {
      name: "a label key with upper case",
      req: { user: { email: "lk@example.com", displayName: "D", labels: { Team: "x" } } },
      field: "user.labels",
    },
    {
      name: "a label key starting with a digit",
      req: { user: { email: "lk2@example.com", displayName: "D", labels: { "1team": "x" } } },
      field: "user.labels",
    },
    {
      name: "a label value of 257 chars",
      req: { user: { email: "lv@example.com", displayName: "D", labels: { team: long(257) } } },
      field: "user.labels",
    },
    {
      name: "65 labels",
      req: {
        user: {
          email: "l65@example.com",
          displayName: "D",
          labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])),
        },
      },
      field: "user.labels",
    },
  ])("rejects $name: INVALID_ARGUMENT naming $field, nothing created", async ({ req, field }) => {
    const before = await userCount();
    const f = await failure(grpc.call(createUser, req, admin));
    expect(f.code).toBe(Code.InvalidArgument);
    expect(f.reason).toBe("INVALID_ARGUMENT");
    expect(f.domain).toBeTruthy();
    expect(f.violations.length).toBeGreaterThan(0);
    expect(f.violations.some((v) => v === field || v.startsWith(`${field}[`) || v.startsWith(`${field}.`))).toBe(true);
    expect(await userCount()).toBe(before);
  });

  it("reports every invalid field at once", async () => {
    const f = await failure(
      grpc.call(createUser, { user: { email: "nope", displayName: long(101) }, password: "short" }, admin),
    );
    expect(f.code).toBe(Code.InvalidArgument);
    expect(f.violations).toEqual(expect.arrayContaining(["user.email", "user.display_name", "password"]));
  });

  it("accepts the boundaries: display_name of 100 chars, password of 8 and 128 chars, 64 labels", async () => {
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, long(256)]));
    const a = await grpc.call(
      createUser,
      { user: { email: uniqueEmail("b1"), displayName: long(100), labels }, password: "k7#m2Qx9" },
      admin,
    );
    expect(Object.keys(a.user?.labels ?? {})).toHaveLength(64);
    await grpc.call(createUser, { user: { email: uniqueEmail("b2"), displayName: "D" }, password: long(128) }, admin);
  });

  it("rejects an email already used, in any case: ALREADY_EXISTS EMAIL_TAKEN, nothing created", async () => {
    const email = uniqueEmail("taken");
    await grpc.call(createUser, { user: { email, displayName: "First" } }, admin);
    const before = await userCount();
    for (const variant of [email, email.toUpperCase(), ADMIN.email.toUpperCase()]) {
      const f = await failure(grpc.call(createUser, { user: { email: variant, displayName: "Second" } }, admin));
      expect(f.code).toBe(Code.AlreadyExists);
      expect(f.reason).toBe("EMAIL_TAKEN");
    }
    expect(await userCount()).toBe(before);
    expect(await rowsWithEmail(email)).toHaveLength(1);
  });

  it("lets exactly one of several concurrent creates with the same email succeed", async () => {
    const email = uniqueEmail("race");
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        grpc.call(createUser, { user: { email: i % 2 ? email : email.toUpperCase(), displayName: `R${i}` } }, admin),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") {
        const f = await failure(Promise.reject(r.reason));
        expect([f.code, f.reason]).toEqual([Code.AlreadyExists, "EMAIL_TAKEN"]);
      }
    }
    expect(await rowsWithEmail(email)).toHaveLength(1);
  });

  it("is admin only: a regular user gets PERMISSION_DENIED, no token UNAUTHENTICATED; nothing created", async () => {
    const email = uniqueEmail("denied");
    const denied = await failure(grpc.call(createUser, { user: { email, displayName: "D" } }, member.token));
    expect([denied.code, denied.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
    const anon = await failure(grpc.call(createUser, { user: { email, displayName: "D" } }));
    expect([anon.code, anon.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
    expect(await rowsWithEmail(email)).toHaveLength(0);
  });

  it("checks access before validation: a regular user sending garbage gets PERMISSION_DENIED", async () => {
    const f = await failure(grpc.call(createUser, { user: { email: "garbage" } }, member.token));
    expect(f.code).toBe(Code.PermissionDenied);
  });
});

describe("CreateUser request_id idempotency", () => {
  it("returns the first result for a sequential retry and creates one row", async () => {
    const requestId = randomUUID();
    const email = uniqueEmail("idem");
    const first = await grpc.call(
      createUser,
      { user: { email, displayName: "Idem" }, password: "password-123", requestId },
      admin,
    );
    const second = await grpc.call(
      createUser,
      { user: { email, displayName: "Idem" }, password: "password-123", requestId },
      admin,
    );
    expect(second.user).toEqual(first.user);
    expect(await rowsWithEmail(email)).toHaveLength(1);
  });

  it("returns the first result even when the retry's payload differs, and creates nothing", async () => {
    const requestId = randomUUID();
    const email = uniqueEmail("idem-a");
    const other = uniqueEmail("idem-b");
    const first = await grpc.call(createUser, { user: { email, displayName: "A" }, requestId }, admin);
    const before = await userCount();
    const retry = await grpc.call(createUser, { user: { email: other, displayName: "B" }, requestId }, admin);
    expect(retry.user?.id).toBe(first.user?.id);
    expect(retry.user?.email).toBe(email);
    expect(await userCount()).toBe(before);
    expect(await rowsWithEmail(other)).toHaveLength(0);
  });

  it("creates exactly one row for concurrent retries, all answering the same user", async () => {
    const requestId = randomUUID();
    const email = uniqueEmail("idem-concurrent");
    const before = await userCount();
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        grpc.call(
          createUser,
          { user: { email, displayName: "Concurrent" }, password: "password-123", requestId },
          admin,
        ),
      ),
    );
    const ids = new Set(results.map((r) => r.user?.id));
    expect(ids.size).toBe(1);
    expect(await rowsWithEmail(email)).toHaveLength(1);
    expect(await userCount()).toBe(before + 1);
  });

  it("treats different request_ids as different requests (the second one finds the email taken)", async () => {
    const email = uniqueEmail("idem-distinct");
    await grpc.call(createUser, { user: { email, displayName: "One" }, requestId: randomUUID() }, admin);
    const f = await failure(
      grpc.call(createUser, { user: { email, displayName: "Two" }, requestId: randomUUID() }, admin),
    );
    expect([f.code, f.reason]).toEqual([Code.AlreadyExists, "EMAIL_TAKEN"]);
    expect(await rowsWithEmail(email)).toHaveLength(1);
  });

  it("does not burn a request_id on a failed create: a corrected retry with the same id succeeds", async () => {
    const requestId = randomUUID();
    const taken = uniqueEmail("idem-taken");
    await grpc.call(createUser, { user: { email: taken, displayName: "Holder" } }, admin);
    const f = await failure(grpc.call(createUser, { user: { email: taken, displayName: "Dup" }, requestId }, admin));
    expect(f.reason).toBe("EMAIL_TAKEN");
    const fresh = uniqueEmail("idem-fresh");
    const ok = await grpc.call(createUser, { user: { email: fresh, displayName: "Fresh" }, requestId }, admin);
    expect(ok.user?.email).toBe(fresh);
    expect(await rowsWithEmail(fresh)).toHaveLength(1);
  });
});
