/**
 * DeleteUser and UndeleteUser over @grpc/grpc-js: soft delete (state, delete_time, sessions revoked,
 * email freed, login refused), etags, admin-only access, and undelete, including EMAIL_TAKEN when the
 * address was reused meanwhile. Refused calls are checked against the rows.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, createPlainUser, login, type Member } from "../helpers/accounts.ts";
import { failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const { createUser, deleteUser, undeleteUser, getUser, updateUser } = UserService.method;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let member: Member;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  member = await createMember(server.url, admin, { prefix: "bystander" });
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

interface Row {
  state: string;
  delete_time: Date | null;
  version: number;
}

async function row(id: string): Promise<Row> {
  return (await query<Row>(server.databaseUrl, "select state, delete_time, version from users where id = $1", [id]))[0];
}

describe("DeleteUser", () => {
  it("soft-deletes: state DELETED, delete_time set, new etag; the row stays", async () => {
    const u = await createPlainUser(server.url, admin, "soft");
    const res = await grpc.call(deleteUser, { userId: u.id }, admin);
    expect(res.user?.id).toBe(u.id);
    expect(res.user?.state).toBe(UserState.DELETED);
    expect(res.user?.deleteTime).toBeDefined();
    expect(res.user?.etag).not.toBe(u.etag);
    const r = await row(u.id);
    expect(r.state).toBe("deleted");
    expect(r.delete_time).toBeInstanceOf(Date);
  });

  it("revokes the user's sessions, refuses its login and its access token", async () => {
    const victim = await createMember(server.url, admin, { prefix: "victim" });
    await grpc.call(deleteUser, { userId: victim.user.id }, admin);
    const sessions = await query<{ revoked: boolean }>(
      server.databaseUrl,
      "select revoke_time is not null as revoked from sessions where user_id = $1",
      [victim.user.id],
    );
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.every((s) => s.revoked)).toBe(true);
    const relogin = await failure(login(server.url, victim.email, victim.password));
    expect([relogin.code, relogin.reason]).toEqual([Code.Unauthenticated, "INVALID_CREDENTIALS"]);
    const me = await failure(grpc.call(AuthService.method.getCurrentUser, {}, victim.token));
    expect([me.code, me.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });

  it("frees the email: a new user may take it, in any case", async () => {
    const u = await createPlainUser(server.url, admin, "freed");
    await grpc.call(deleteUser, { userId: u.id }, admin);
    const res = await grpc.call(
      createUser,
      { user: { email: u.email.toUpperCase(), displayName: "Successor" } },
      admin,
    );
    expect(res.user?.id).not.toBe(u.id);
    const rows = await query(server.databaseUrl, "select id from users where lower(email) = lower($1)", [u.email]);
    expect(rows).toHaveLength(2);
  });

  it("deletes when the etag is current; refuses a stale one with ABORTED ETAG_MISMATCH, nothing changed", async () => {
    const u = await createPlainUser(server.url, admin, "etag-del");
    const updated = await grpc.call(
      updateUser,
      { user: { id: u.id, displayName: "Changed" }, updateMask: { paths: ["display_name"] } },
      admin,
    );
    const before = await row(u.id);
    const f = await failure(grpc.call(deleteUser, { userId: u.id, etag: u.etag }, admin));
    expect([f.code, f.reason]).toEqual([Code.Aborted, "ETAG_MISMATCH"]);
    expect(await row(u.id)).toEqual(before);
    const ok = await grpc.call(deleteUser, { userId: u.id, etag: updated.user?.etag }, admin);
    expect(ok.user?.state).toBe(UserState.DELETED);
  });

  it("answers an unknown id, or a user already deleted, with NOT_FOUND USER_NOT_FOUND", async () => {
    const unknown = await failure(grpc.call(deleteUser, { userId: randomUUID() }, admin));
    expect([unknown.code, unknown.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
    const u = await createPlainUser(server.url, admin, "twice");
    await grpc.call(deleteUser, { userId: u.id }, admin);
    const before = await row(u.id);
    const again = await failure(grpc.call(deleteUser, { userId: u.id }, admin));
    expect([again.code, again.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
    expect(await row(u.id)).toEqual(before);
  });

  it.each([
    { name: "a user_id that is not a UUID", req: { userId: "x" }, field: "user_id" },
    { name: "an etag over 64 chars", req: { userId: randomUUID(), etag: "e".repeat(65) }, field: "etag" },
  ])("rejects $name: INVALID_ARGUMENT on $field", async ({ req, field }) => {
    const f = await failure(grpc.call(deleteUser, req, admin));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual([field]);
  });

  it("is admin only: a user deleting another user or itself gets PERMISSION_DENIED, nothing changed", async () => {
    const u = await createPlainUser(server.url, admin, "protected");
    for (const userId of [u.id, member.user.id]) {
      const before = await row(userId);
      const f = await failure(grpc.call(deleteUser, { userId }, member.token));
      expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
      expect(await row(userId)).toEqual(before);
    }
  });
});

describe("UndeleteUser", () => {
  it("restores a deleted user: ACTIVE, no delete_time, email kept, and it can log in again", async () => {
    const m = await createMember(server.url, admin, { prefix: "restored" });
    await grpc.call(deleteUser, { userId: m.user.id }, admin);
    const res = await grpc.call(undeleteUser, { userId: m.user.id }, admin);
    expect(res.user?.state).toBe(UserState.ACTIVE);
    expect(res.user?.deleteTime).toBeUndefined();
    expect(res.user?.email).toBe(m.email);
    expect(await row(m.user.id)).toMatchObject({ state: "active", delete_time: null });
    const token = await login(server.url, m.email, m.password);
    const me = await grpc.call(AuthService.method.getCurrentUser, {}, token);
    expect(me.user?.id).toBe(m.user.id);
  });

  it("refuses when the email was taken meanwhile (in another case): ALREADY_EXISTS EMAIL_TAKEN, still deleted", async () => {
    const u = await createPlainUser(server.url, admin, "reused");
    await grpc.call(deleteUser, { userId: u.id }, admin);
    await grpc.call(createUser, { user: { email: u.email.toUpperCase(), displayName: "Taker" } }, admin);
    const before = await row(u.id);
    const f = await failure(grpc.call(undeleteUser, { userId: u.id }, admin));
    expect([f.code, f.reason]).toEqual([Code.AlreadyExists, "EMAIL_TAKEN"]);
    expect(await row(u.id)).toEqual(before);
    const seen = await grpc.call(getUser, { userId: u.id }, admin);
    expect(seen.user?.state).toBe(UserState.DELETED);
  });

  it("answers an unknown id with NOT_FOUND USER_NOT_FOUND", async () => {
    const f = await failure(grpc.call(undeleteUser, { userId: randomUUID() }, admin));
    expect([f.code, f.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
  });

  it("rejects a user_id that is not a UUID: INVALID_ARGUMENT on user_id", async () => {
    const f = await failure(grpc.call(undeleteUser, { userId: "42" }, admin));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual(["user_id"]);
  });

  it("is admin only: PERMISSION_DENIED for a regular user, nothing changed", async () => {
    const u = await createPlainUser(server.url, admin, "stay-deleted");
    await grpc.call(deleteUser, { userId: u.id }, admin);
    const before = await row(u.id);
    const f = await failure(grpc.call(undeleteUser, { userId: u.id }, member.token));
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
    expect(await row(u.id)).toEqual(before);
  });
});
