/**
 * UpdateUser over @grpc/grpc-js: update_mask semantics (only masked fields change, `*` = all updatable
 * ones, unknown paths rejected), etags (mismatch is ABORTED, and of concurrent writers with one etag
 * exactly one wins), EMAIL_TAKEN, and what a regular user may do to itself (display_name and labels only)
 * and to others (nothing). Every refused call is checked against the row: nothing changed.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Role, type User, UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, createPlainUser, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

const { updateUser, getUser, deleteUser } = UserService.method;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let self: Member;
let other: Member;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  [self, other] = await Promise.all([
    createMember(server.url, admin, { prefix: "self", labels: { team: "core" } }),
    createMember(server.url, admin, { prefix: "other" }),
  ]);
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

interface Row {
  email: string;
  display_name: string;
  role: string;
  state: string;
  labels: Record<string, string>;
  version: number;
}

async function row(id: string): Promise<Row> {
  const rows = await query<Row>(
    server.databaseUrl,
    "select email, display_name, role, state, labels, version from users where id = $1",
    [id],
  );
  if (!rows[0]) throw new Error(`no row ${id}`);
  return rows[0];
}

async function current(id: string): Promise<User> {
  const res = await grpc.call(getUser, { userId: id }, admin);
  if (!res.user) throw new Error("no user");
  return res.user;
}

describe("UpdateUser by an admin", () => {
  let target: User;
  beforeEach(async () => {
    target = await createPlainUser(server.url, admin, "target");
  });

  it("changes only the fields in the mask, and gives a new etag and update_time", async () => {
    const res = await grpc.call(
      updateUser,
      {
        user: { id: target.id, displayName: "Renamed", email: uniqueEmail("ignored"), role: Role.ADMIN },
        updateMask: { paths: ["display_name"] },
      },
      admin,
    );
    expect(res.user?.displayName).toBe("Renamed");
    expect(res.user?.email).toBe(target.email);
    expect(res.user?.role).toBe(Role.USER);
    expect(res.user?.etag).not.toBe(target.etag);
    const ms = (t: User["updateTime"]) => Number(t?.seconds ?? 0n) * 1000 + (t?.nanos ?? 0) / 1e6;
    expect(ms(res.user?.updateTime)).toBeGreaterThan(ms(target.updateTime));
    expect(res.user?.createTime).toEqual(target.createTime);
    const r = await row(target.id);
    expect([r.display_name, r.email, r.role]).toEqual(["Renamed", target.email, "user"]);
  });

  it("sets email, display_name, role, labels and state with `*`", async () => {
    const email = uniqueEmail("star");
    const res = await grpc.call(
      updateUser,
      {
        user: {
          id: target.id,
          email,
          displayName: "Star",
          role: Role.ADMIN,
          labels: { a: "1" },
          state: UserState.SUSPENDED,
          etag: target.etag,
        },
        updateMask: { paths: ["*"] },
      },
      admin,
    );
    expect(res.user).toMatchObject({
      email,
      displayName: "Star",
      role: Role.ADMIN,
      labels: { a: "1" },
      state: UserState.SUSPENDED,
    });
    expect(await row(target.id)).toMatchObject({
      email,
      display_name: "Star",
      role: "admin",
      labels: { a: "1" },
      state: "suspended",
    });
  });

  it("suspends and reactivates a user", async () => {
    const suspended = await grpc.call(
      updateUser,
      { user: { id: target.id, state: UserState.SUSPENDED }, updateMask: { paths: ["state"] } },
      admin,
    );
    expect(suspended.user?.state).toBe(UserState.SUSPENDED);
    const active = await grpc.call(
      updateUser,
      { user: { id: target.id, state: UserState.ACTIVE }, updateMask: { paths: ["state"] } },
      admin,
    );
    expect(active.user?.state).toBe(UserState.ACTIVE);
    expect((await row(target.id)).state).toBe("active");
  });

  it("replaces labels as a whole (an empty map clears them)", async () => {
    await grpc.call(
      updateUser,
      { user: { id: target.id, labels: { a: "1", b: "2" } }, updateMask: { paths: ["labels"] } },
      admin,
    );
    const res = await grpc.call(
      updateUser,
      { user: { id: target.id, labels: {} }, updateMask: { paths: ["labels"] } },
      admin,
    );
    expect(res.user?.labels).toEqual({});
    expect((await row(target.id)).labels).toEqual({});
  });

  it.each([
    { name: "no update_mask", mask: undefined, user: { displayName: "X" }, field: "update_mask" },
    { name: "an empty update_mask", mask: [], user: { displayName: "X" }, field: "update_mask" },
    { name: "an unknown path", mask: ["nickname"], user: { displayName: "X" }, field: "update_mask" },
    { name: "an output-only path (create_time)", mask: ["create_time"], user: {}, field: "update_mask" },
    { name: "an output-only path (id)", mask: ["id"], user: {}, field: "update_mask" },
    { name: "`*` with other paths", mask: ["*", "display_name"], user: { displayName: "X" }, field: "update_mask" },
    {
      name: "an empty display_name in the mask",
      mask: ["display_name"],
      user: { displayName: "" },
      field: "user.display_name",
    },
    {
      name: "a display_name of 101 chars",
      mask: ["display_name"],
      user: { displayName: "x".repeat(101) },
      field: "user.display_name",
    },
    { name: "an empty email in the mask", mask: ["email"], user: { email: "" }, field: "user.email" },
    { name: "an invalid email", mask: ["email"], user: { email: "not-an-email" }, field: "user.email" },
    { name: "ROLE_UNSPECIFIED in the mask", mask: ["role"], user: { role: Role.UNSPECIFIED }, field: "user.role" },
    { name: "state DELETED", mask: ["state"], user: { state: UserState.DELETED }, field: "user.state" },
    { name: "state UNSPECIFIED", mask: ["state"], user: { state: UserState.UNSPECIFIED }, field: "user.state" },
    { name: "a bad label key", mask: ["labels"], user: { labels: { "Bad Key": "v" } }, field: "user.labels" },
    { name: "`*` without every field set", mask: ["*"], user: { displayName: "Only" }, field: "user.email" },
  ])("rejects $name: INVALID_ARGUMENT naming $field, nothing changed", async ({ mask, user, field }) => {
    const before = await row(target.id);
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: target.id, ...user }, updateMask: mask === undefined ? undefined : { paths: mask } },
        admin,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations.some((v) => v === field || v.startsWith(`${field}[`))).toBe(true);
    expect(await row(target.id)).toEqual(before);
  });

  it("rejects a missing user.id: INVALID_ARGUMENT on user.id", async () => {
    const f = await failure(
      grpc.call(updateUser, { user: { displayName: "X" }, updateMask: { paths: ["display_name"] } }, admin),
    );
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual(["user.id"]);
  });

  it("rejects a user.id that is not a UUID as INVALID_ARGUMENT on user.id (not INTERNAL)", async () => {
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: "not-a-uuid", displayName: "X" }, updateMask: { paths: ["display_name"] } },
        admin,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual(["user.id"]);
  });

  it("answers an unknown or deleted user with NOT_FOUND USER_NOT_FOUND", async () => {
    const unknown = await failure(
      grpc.call(
        updateUser,
        { user: { id: randomUUID(), displayName: "X" }, updateMask: { paths: ["display_name"] } },
        admin,
      ),
    );
    expect([unknown.code, unknown.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
    await grpc.call(deleteUser, { userId: target.id }, admin);
    const before = await row(target.id);
    const gone = await failure(
      grpc.call(
        updateUser,
        { user: { id: target.id, displayName: "X" }, updateMask: { paths: ["display_name"] } },
        admin,
      ),
    );
    expect([gone.code, gone.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
    expect(await row(target.id)).toEqual(before);
  });

  it("refuses an email used by another live user, in any case: ALREADY_EXISTS EMAIL_TAKEN, nothing changed", async () => {
    const before = await row(target.id);
    for (const email of [other.email.toUpperCase(), ADMIN.email]) {
      const f = await failure(
        grpc.call(updateUser, { user: { id: target.id, email }, updateMask: { paths: ["email"] } }, admin),
      );
      expect([f.code, f.reason]).toEqual([Code.AlreadyExists, "EMAIL_TAKEN"]);
    }
    expect(await row(target.id)).toEqual(before);
  });

  it("lets a user change the case of its own email", async () => {
    const res = await grpc.call(
      updateUser,
      { user: { id: target.id, email: target.email.toUpperCase() }, updateMask: { paths: ["email"] } },
      admin,
    );
    expect(res.user?.email).toBe(target.email.toUpperCase());
  });
});

describe("UpdateUser etags", () => {
  let target: User;
  beforeEach(async () => {
    target = await createPlainUser(server.url, admin, "etag");
  });

  it("applies an update carrying the current etag", async () => {
    const res = await grpc.call(
      updateUser,
      { user: { id: target.id, displayName: "With etag", etag: target.etag }, updateMask: { paths: ["display_name"] } },
      admin,
    );
    expect(res.user?.displayName).toBe("With etag");
  });

  it("refuses a stale etag: ABORTED ETAG_MISMATCH, nothing changed", async () => {
    await grpc.call(
      updateUser,
      { user: { id: target.id, displayName: "First", etag: target.etag }, updateMask: { paths: ["display_name"] } },
      admin,
    );
    const before = await row(target.id);
    const f = await failure(
      grpc.call(
        updateUser,
        {
          user: { id: target.id, displayName: "Lost update", etag: target.etag },
          updateMask: { paths: ["display_name"] },
        },
        admin,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.Aborted, "ETAG_MISMATCH"]);
    expect(await row(target.id)).toEqual(before);
  });

  it("refuses a made-up etag: ABORTED ETAG_MISMATCH", async () => {
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: target.id, displayName: "X", etag: "garbage" }, updateMask: { paths: ["display_name"] } },
        admin,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.Aborted, "ETAG_MISMATCH"]);
  });

  it("lets exactly one of concurrent updates with the same etag win; the others get ABORTED ETAG_MISMATCH", async () => {
    const n = 8;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        grpc.call(
          updateUser,
          {
            user: { id: target.id, displayName: `Writer ${i}`, etag: target.etag },
            updateMask: { paths: ["display_name"] },
          },
          admin,
        ),
      ),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") {
        const f = await failure(Promise.reject(r.reason));
        expect([f.code, f.reason]).toEqual([Code.Aborted, "ETAG_MISMATCH"]);
      }
    }
    const winner = (won[0] as PromiseFulfilledResult<{ user?: User }>).value.user;
    const r = await row(target.id);
    expect(r.display_name).toBe(winner?.displayName);
    expect((await current(target.id)).etag).toBe(winner?.etag);
  });

  it("lets concurrent updates without an etag all apply, one after the other", async () => {
    const before = await row(target.id);
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        grpc.call(
          updateUser,
          { user: { id: target.id, displayName: `Blind ${i}` }, updateMask: { paths: ["display_name"] } },
          admin,
        ),
      ),
    );
    expect((await row(target.id)).version).toBe(before.version + 5);
  });

  it("applies every one of many racing blind writes once, each version's change logged exactly once", async () => {
    // 24 writers on one row: most lose the optimistic race more than once and end on the locked path.
    const before = await row(target.id);
    const n = 24;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        grpc.call(
          updateUser,
          { user: { id: target.id, labels: { writer: String(i) } }, updateMask: { paths: ["labels"] } },
          admin,
        ),
      ),
    );
    const after = await row(target.id);
    expect(after.version).toBe(before.version + n);
    expect(new Set(results.map((r) => r.user?.etag)).size).toBe(n);
    const logged = await query<{ version: number; previous: number; writer: string }>(
      server.databaseUrl,
      `select (snapshot->>'version')::int as version, (previous->>'version')::int as previous,
         snapshot->'labels'->>'writer' as writer
       from user_changes where user_id = $1 and type = 'updated' order by id`,
      [target.id],
    );
    expect(logged.map((c) => c.version)).toEqual(Array.from({ length: n }, (_, i) => before.version + 1 + i));
    expect(logged.every((c) => c.previous === c.version - 1)).toBe(true);
    expect(new Set(logged.map((c) => c.writer)).size).toBe(n);
    expect(after.labels).toEqual({ writer: logged[n - 1].writer });
  });
});

describe("UpdateUser by a regular user", () => {
  it("lets a user change its own display_name and labels", async () => {
    const res = await grpc.call(
      updateUser,
      {
        user: { id: self.user.id, displayName: "Self Renamed", labels: { team: "infra", "on-call": "yes" } },
        updateMask: { paths: ["display_name", "labels"] },
      },
      self.token,
    );
    expect(res.user).toMatchObject({
      displayName: "Self Renamed",
      labels: { team: "infra", "on-call": "yes" },
      role: Role.USER,
    });
    expect(await row(self.user.id)).toMatchObject({
      display_name: "Self Renamed",
      labels: { team: "infra", "on-call": "yes" },
    });
  });

  it("honours etags for a user's own updates too", async () => {
    const fresh = await current(self.user.id);
    await grpc.call(
      updateUser,
      { user: { id: self.user.id, displayName: "Etag ok", etag: fresh.etag }, updateMask: { paths: ["display_name"] } },
      self.token,
    );
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: self.user.id, displayName: "Stale", etag: fresh.etag }, updateMask: { paths: ["display_name"] } },
        self.token,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.Aborted, "ETAG_MISMATCH"]);
  });

  it.each([
    { name: "its role", user: { role: Role.ADMIN }, paths: ["role"] },
    { name: "its state", user: { state: UserState.SUSPENDED }, paths: ["state"] },
    { name: "its email", user: { email: "new-self@example.com" }, paths: ["email"] },
    {
      name: "everything with `*`",
      user: { role: Role.ADMIN, displayName: "Star", email: "star-self@example.com", state: UserState.ACTIVE },
      paths: ["*"],
    },
    {
      name: "display_name together with role",
      user: { displayName: "Sneaky", role: Role.ADMIN },
      paths: ["display_name", "role"],
    },
  ])("refuses a user changing $name: PERMISSION_DENIED, nothing changed", async ({ user, paths }) => {
    const before = await row(self.user.id);
    const f = await failure(
      grpc.call(updateUser, { user: { id: self.user.id, ...user }, updateMask: { paths } }, self.token),
    );
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
    expect(await row(self.user.id)).toEqual(before);
  });

  it("keeps the token's powers: after a refused role change the user is still not an admin", async () => {
    const f = await failure(grpc.call(getUser, { userId: other.user.id }, self.token));
    expect(f.code).toBe(Code.PermissionDenied);
  });

  it("refuses a user changing another user, even its display_name: PERMISSION_DENIED, nothing changed", async () => {
    const before = await row(other.user.id);
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: other.user.id, displayName: "Hijacked" }, updateMask: { paths: ["display_name"] } },
        self.token,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
    expect(await row(other.user.id)).toEqual(before);
  });

  it("answers a user targeting an unknown id with PERMISSION_DENIED", async () => {
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: randomUUID(), displayName: "X" }, updateMask: { paths: ["display_name"] } },
        self.token,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
  });

  it("validates a user's own changes: a bad label key is INVALID_ARGUMENT on user.labels", async () => {
    const before = await row(self.user.id);
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: self.user.id, labels: { "9lives": "x" } }, updateMask: { paths: ["labels"] } },
        self.token,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations[0]).toMatch(/^user\.labels/);
    expect(await row(self.user.id)).toEqual(before);
  });
});
