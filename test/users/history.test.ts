/**
 * The actor of every change and ListUserChanges (docs/adr/0022, docs/history.md), over the wire against the
 * real server and PostgreSQL: who made each change (an admin with a JWT, a user itself, an API key, the
 * system for the bootstrap admin) with the client address (behind TRUST_PROXY) and the request id; history
 * newest first across pages; filters on type, time and actor.user_id; INVALID_FILTER and INVALID_PAGE_TOKEN
 * (tampered, or bound to another user or filter); a user reading its own history and refused another's; and
 * retention: a change past CHANGE_LOG_RETENTION but within AUDIT_RETENTION is still listed while its resume
 * token is RESUME_TOKEN_EXPIRED, and one past AUDIT_RETENTION is gone.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActorKind } from "../../gen/user/v1/actor_pb.js";
import { WatchEventType as T, type UserChange } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { expectDenied } from "../security/expect.ts";
import { watch } from "../streams/support.ts";

let server: TestServer;
let admin: string;
let adminId: string;

beforeAll(async () => {
  server = await startTestServer({ TRUST_PROXY: "true" });
  admin = await adminToken(server.url);
  [{ id: adminId }] = await query<{ id: string }>(server.databaseUrl, "select id from users where role = 'admin'");
});
afterAll(() => server?.close());

const as = (token: string, headers: Record<string, string> = {}): Clients =>
  clients(server.url, "grpc", () => token, headers);

/** Every page of a listing, and the pages' sizes. */
async function listAll(
  token: string,
  req: { userId?: string; filter?: string; pageSize?: number },
): Promise<{ changes: UserChange[]; pages: number }> {
  const changes: UserChange[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const res = await as(token).users.listUserChanges({ ...req, pageToken });
    changes.push(...res.changes);
    pageToken = res.nextPageToken;
    pages++;
  } while (pageToken !== "");
  return { changes, pages };
}

const ALL_FIELDS = [
  "id",
  "email",
  "display_name",
  "role",
  "state",
  "labels",
  "create_time",
  "update_time",
  "delete_time",
  "etag",
  "email_verified",
  "kind",
  "password_change_required",
];

describe("the actor of a change", () => {
  it("is the system for the bootstrap admin's creation", async () => {
    const res = await as(admin).users.listUserChanges({ userId: adminId, filter: "type = WATCH_EVENT_TYPE_CREATED" });
    expect(res.changes).toHaveLength(1);
    const [c] = res.changes;
    expect(c.actor).toMatchObject({
      kind: ActorKind.SYSTEM,
      userId: "",
      apiKeyId: "",
      clientAddress: "",
      requestId: "",
    });
    expect(c.changedFields).toEqual(ALL_FIELDS);
    expect(c.user?.id).toBe(adminId);
  });

  it("is the admin (JWT) with its client address and request id, and the user itself for its own change", async () => {
    const headers = { "x-request-id": "history-admin-create-1", "x-forwarded-for": "203.0.113.7" };
    const created = await as(admin, headers).users.createUser({
      user: { email: `h-${Date.now()}@example.com`, displayName: "Made by admin" },
      password: "a long enough password 1",
    });
    const id = created.user?.id ?? "";
    const m = await createMember(server.url, admin, { prefix: "self" });
    await as(m.token, { "x-request-id": "self-rename-1" }).users.updateUser({
      user: { id: m.user.id, displayName: "Renamed myself" },
      updateMask: { paths: ["display_name"] },
    });

    const [made] = (await as(admin).users.listUserChanges({ userId: id })).changes;
    expect(made.type).toBe(T.CREATED);
    expect(made.actor).toMatchObject({
      kind: ActorKind.USER,
      userId: adminId,
      apiKeyId: "",
      clientAddress: "203.0.113.7",
      requestId: "history-admin-create-1",
    });
    const [renamed, creation] = (await as(admin).users.listUserChanges({ userId: m.user.id })).changes;
    expect(renamed.type).toBe(T.UPDATED);
    expect(renamed.actor).toMatchObject({ kind: ActorKind.USER, userId: m.user.id, requestId: "self-rename-1" });
    // Without the header, the address is the TCP peer's.
    expect(renamed.actor?.clientAddress).toBe("127.0.0.1");
    expect(renamed.changedFields).toEqual(["display_name"]);
    expect(renamed.user?.displayName).toBe("Renamed myself");
    expect(creation.actor).toMatchObject({ kind: ActorKind.USER, userId: adminId });
  });

  it("is the API key, with its user, for a change made with `authorization: Bearer <secret>`", async () => {
    const key = await as(admin).users.createApiKey({ userId: adminId, displayName: "history test" });
    const target = await createMember(server.url, admin, { prefix: "by-key" });
    await as(key.secret, { "x-request-id": "by-key-1" }).users.updateUser({
      user: { id: target.user.id, labels: { team: "b" } },
      updateMask: { paths: ["labels"] },
    });
    await as(key.secret).users.deleteUser({ userId: target.user.id });
    const [deleted, labelled] = (await as(admin).users.listUserChanges({ userId: target.user.id })).changes;
    for (const c of [deleted, labelled]) {
      expect(c.actor).toMatchObject({ kind: ActorKind.API_KEY, userId: adminId, apiKeyId: key.apiKey?.id });
    }
    expect(labelled.actor?.requestId).toBe("by-key-1");
    expect(labelled.changedFields).toEqual(["labels"]);
    expect(deleted.type).toBe(T.DELETED);
    expect(deleted.changedFields).toEqual(["state", "delete_time"]);
    // The secret is recorded nowhere in the log.
    const [{ n }] = await query<{ n: number }>(
      server.databaseUrl,
      "select count(*)::int as n from user_changes where row_to_json(user_changes)::text like $1",
      [`%${key.secret}%`],
    );
    expect(n).toBe(0);
  });

  it("is the user itself on SignUp and on a password reset or email verification by code, the admin on SetPassword and an import", async () => {
    const email = `signup-${Date.now()}@example.com`;
    const anonymous = clients(server.url, "grpc", () => undefined, { "x-request-id": "signup-1" });
    const signed = await anonymous.auth.signUp({ email, password: "a sign-up password 1", displayName: "Signed" });
    const id = signed.user?.id ?? "";
    const { code } = await as(admin).users.createPasswordResetCode({ userId: id });
    await clients(server.url, "grpc", () => undefined, { "x-request-id": "reset-1" }).auth.resetPassword({
      email,
      code,
      newPassword: "a reset password 2",
    });
    const verification = await as(admin).users.createEmailVerificationCode({ userId: id });
    await clients(server.url, "grpc", () => undefined, { "x-request-id": "verify-1" }).auth.verifyEmail({
      email,
      code: verification.code,
    });
    await as(admin, { "x-request-id": "admin-set-1" }).users.setPassword({
      userId: id,
      password: "an admin's password 4",
      changeRequired: true,
    });
    const [set, verified, reset, created] = (await as(admin).users.listUserChanges({ userId: id })).changes;
    expect(created.actor).toMatchObject({ kind: ActorKind.USER, userId: id, requestId: "signup-1" });
    expect(reset.actor).toMatchObject({ kind: ActorKind.USER, userId: id, requestId: "reset-1" });
    // A new password changes no field of the User message.
    expect(reset.changedFields).toEqual([]);
    expect(verified.actor).toMatchObject({ kind: ActorKind.USER, userId: id, requestId: "verify-1" });
    expect(verified.changedFields).toEqual(["email_verified"]);
    expect(set.actor).toMatchObject({ kind: ActorKind.USER, userId: adminId, requestId: "admin-set-1" });
    expect(set.changedFields).toEqual(["password_change_required"]);

    const imported = `imported-${Date.now()}@example.com`;
    async function* rows() {
      yield {
        user: { email: imported, displayName: "Imported" } as never,
        credential: { case: "password" as const, value: "an imported password 3" },
      };
    }
    const res = await as(admin, { "x-request-id": "import-1" }).users.importUsers(rows());
    expect(res.createdCount).toBe(1);
    const [{ id: importedId }] = await query<{ id: string }>(
      server.databaseUrl,
      "select id from users where lower(email) = $1",
      [imported],
    );
    const [made] = (await as(admin).users.listUserChanges({ userId: importedId })).changes;
    expect(made.actor).toMatchObject({ kind: ActorKind.USER, userId: adminId, requestId: "import-1" });
    expect(made.changedFields).toEqual(ALL_FIELDS);
  });
});

describe("ListUserChanges", () => {
  let m: Member;
  /** The member's changes, newest first: 5 renames, its creation. */
  let all: UserChange[];

  beforeAll(async () => {
    m = await createMember(server.url, admin, { prefix: "paged" });
    for (let i = 1; i <= 5; i++) {
      const token = i % 2 === 0 ? m.token : admin;
      await as(token).users.updateUser({
        user: { id: m.user.id, displayName: `Name ${i}` },
        updateMask: { paths: ["display_name"] },
      });
    }
    all = (await as(admin).users.listUserChanges({ userId: m.user.id })).changes;
  });

  it("lists newest first, with event ids, resume tokens and the user after each change", async () => {
    expect(all.map((c) => c.type)).toEqual([T.UPDATED, T.UPDATED, T.UPDATED, T.UPDATED, T.UPDATED, T.CREATED]);
    expect(all.map((c) => c.user?.displayName)).toEqual(["Name 5", "Name 4", "Name 3", "Name 2", "Name 1", "A Member"]);
    const ids = all.map((c) => Number(c.eventId));
    expect(ids.every((n) => Number.isSafeInteger(n) && n > 0)).toBe(true);
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    expect(new Set(all.map((c) => c.resumeToken)).size).toBe(6);
    const times = all.map((c) => (c.changeTime ? timestampDate(c.changeTime).getTime() : 0));
    expect(times.every((t) => t > 0)).toBe(true);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it("pages with next_page_token, and lists everyone's changes for an admin without user_id", async () => {
    const paged = await listAll(admin, { userId: m.user.id, pageSize: 2 });
    expect(paged.pages).toBe(3);
    expect(paged.changes.map((c) => c.eventId)).toEqual(all.map((c) => c.eventId));
    const everyone = await listAll(admin, { pageSize: 7 });
    expect(everyone.pages).toBeGreaterThan(1);
    const ids = everyone.changes.map((c) => Number(c.eventId));
    expect(new Set(ids).size).toBe(ids.length);
    for (const c of all) expect(ids).toContain(Number(c.eventId));
    expect(new Set(everyone.changes.map((c) => c.user?.id)).size).toBeGreaterThan(2);
  });

  it("filters on type, time and actor.user_id, with AND, OR and NOT", async () => {
    const list = async (filter: string) =>
      (await listAll(admin, { userId: m.user.id, filter, pageSize: 2 })).changes.map((c) => c.eventId);
    const ids = (pick: (c: UserChange, i: number) => boolean) => all.filter(pick).map((c) => c.eventId);
    expect(await list("type = WATCH_EVENT_TYPE_CREATED")).toEqual(ids((c) => c.type === T.CREATED));
    expect(await list("type != WATCH_EVENT_TYPE_CREATED")).toEqual(ids((c) => c.type === T.UPDATED));
    expect(await list(`actor.user_id = "${m.user.id}"`)).toEqual(ids((c) => c.actor?.userId === m.user.id));
    expect(await list(`NOT actor.user_id = "${m.user.id}"`)).toEqual(ids((c) => c.actor?.userId !== m.user.id));
    expect(await list(`actor.user_id != "${adminId}" OR type = WATCH_EVENT_TYPE_CREATED`)).toEqual(
      ids((c) => c.actor?.userId !== adminId || c.type === T.CREATED),
    );
    // The third newest change's own instant, to the microsecond.
    const [{ at }] = await query<{ at: string }>(
      server.databaseUrl,
      `select to_char(change_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at from user_changes where id = $1`,
      [all[2].eventId],
    );
    expect(await list(`time > "${at}"`)).toEqual(ids((_, i) => i < 2));
    expect(await list(`time <= "${at}" AND type = WATCH_EVENT_TYPE_UPDATED`)).toEqual(
      ids((c, i) => i >= 2 && c.type === T.UPDATED),
    );
    expect(await list(`time = "${at}"`)).toEqual([all[2].eventId]);
    expect(await list('type = WATCH_EVENT_TYPE_DELETED AND time > "2000-01-01T00:00:00Z"')).toEqual([]);
  });

  it("refuses a filter outside type, time and actor.user_id with INVALID_FILTER", async () => {
    for (const filter of [
      'display_name = "x"',
      "type = WATCH_EVENT_TYPE_INITIAL",
      "type > WATCH_EVENT_TYPE_CREATED",
      'time > "yesterday"',
      "time > 2026-01-01T00:00:00Z",
      'time : "2026-01-01T00:00:00Z"',
      'actor.user_id = "not-a-uuid"',
      `actor.user_id > "${adminId}"`,
      'actor.kind = "ACTOR_KIND_USER"',
      "type = (",
    ]) {
      const f = await failure(as(admin).users.listUserChanges({ userId: m.user.id, filter }));
      expect({ filter, code: Code[f.code], reason: f.reason }).toEqual({
        filter,
        code: Code[Code.InvalidArgument],
        reason: "INVALID_FILTER",
      });
    }
  });

  it("refuses a page token tampered with, or made for another user_id or filter, with INVALID_PAGE_TOKEN", async () => {
    const first = await as(admin).users.listUserChanges({ userId: m.user.id, pageSize: 2 });
    const token = first.nextPageToken;
    expect(token).not.toBe("");
    const flipped = Buffer.from(token, "base64url");
    flipped[flipped.length - 2] ^= 1;
    const other = await createMember(server.url, admin, { prefix: "other" });
    for (const [what, req] of [
      ["tampered", { userId: m.user.id, pageToken: flipped.toString("base64url") }],
      ["garbage", { userId: m.user.id, pageToken: "not a token" }],
      ["another user", { userId: other.user.id, pageToken: token }],
      ["everyone", { pageToken: token }],
      ["another filter", { userId: m.user.id, filter: "type = WATCH_EVENT_TYPE_UPDATED", pageToken: token }],
    ] as const) {
      const f = await failure(as(admin).users.listUserChanges(req));
      expect({ what, code: Code[f.code], reason: f.reason }).toEqual({
        what,
        code: Code[Code.InvalidArgument],
        reason: "INVALID_PAGE_TOKEN",
      });
    }
    // The same listing goes on.
    const second = await as(admin).users.listUserChanges({ userId: m.user.id, pageSize: 2, pageToken: token });
    expect(second.changes.map((c) => c.eventId)).toEqual(all.slice(2, 4).map((c) => c.eventId));
  });

  it("lets a user read its own history, and refuses it anyone else's or everyone's with PERMISSION_DENIED", async () => {
    const own = await listAll(m.token, { userId: m.user.id, pageSize: 4 });
    expect(own.changes.map((c) => c.eventId)).toEqual(all.map((c) => c.eventId));
    const other = await createMember(server.url, admin, { prefix: "nosy" });
    await expectDenied(as(other.token).users.listUserChanges({ userId: m.user.id }));
    await expectDenied(as(other.token).users.listUserChanges({}));
    await expectDenied(as(m.token).users.listUserChanges({ userId: adminId }));
  });

  it("carries the same actor and event_id on WatchUsers as in the history", async () => {
    const w = await watch(server, admin, "grpc", { filter: `email = "${m.email}"`, sendInitial: true }).synced();
    await as(m.token, { "x-request-id": "watched-1" }).users.updateUser({
      user: { id: m.user.id, displayName: "Watched" },
      updateMask: { paths: ["display_name"] },
    });
    const [e] = await w.liveCount(1);
    await w.stop();
    const [latest] = (await as(admin).users.listUserChanges({ userId: m.user.id, pageSize: 1 })).changes;
    expect(e.eventId).toBe(latest.eventId);
    expect(e.resumeToken).toBe(latest.resumeToken);
    expect(e.actor).toEqual(latest.actor);
    expect(e.actor).toMatchObject({ kind: ActorKind.USER, userId: m.user.id, requestId: "watched-1" });
  });
});
