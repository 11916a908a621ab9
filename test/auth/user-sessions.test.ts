/**
 * ListUserSessions and RevokeUserSessions over the wire (admin): a user's live sessions newest first, paged
 * by keyset across sessions created in the same microsecond and clamped at 1000 a page; revoking one session
 * or all of them with the count of those that were live, their tokens dead on this replica at once and on a
 * second replica within a second, also when a refresh races the revocation; USER_NOT_FOUND, SESSION_NOT_FOUND
 * (another user's session), INVALID_ARGUMENT for ids that are not UUIDs, and PERMISSION_DENIED for a non-admin,
 * none of which changes anything.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { authOf, expectDeadAccess, expectDeadRefresh, expectLiveAccess, loginFrom, sidOf } from "./session-helpers.ts";

let a: TestServer;
let b: TestServer;
let admin: string;

beforeAll(async () => {
  a = await startTestServer();
  b = await startTestServer({ DATABASE_URL: a.databaseUrl });
  admin = await adminToken(a.url);
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

const usersOf = (token: string, name: TransportName = "grpc", s: TestServer = a) =>
  clients(s.url, name, () => token).users;
const member = (prefix: string) => createMember(a.url, admin, { prefix });
const UNKNOWN = "00000000-0000-4000-8000-000000000000";

/**
 * Adds `n` live sessions to a user straight in the database, created `spacing` apart (0: all in the same
 * microsecond) from an hour and `older` ago.
 */
async function insertSessions(userId: string, n: number, spacing: string, older = "0 seconds"): Promise<void> {
  await query(
    a.databaseUrl,
    `insert into sessions (id, user_id, create_time, last_refresh_time, expire_time, max_expire_time, client_address, user_agent)
     select gen_random_uuid(), $1, t, t, now() + interval '1 day', now() + interval '2 days', '192.0.2.1', 'bulk'
     from (select date_trunc('second', now()) - interval '1 hour' - $4::interval + interval '0.123456 seconds'
                  - i * $3::interval as t
           from generate_series(1, $2) i) x`,
    [userId, n, spacing, older],
  );
}

/** The user's live session ids in the order the contract promises, straight from the database. */
async function liveIds(userId: string): Promise<string[]> {
  const rows = await query<{ id: string }>(
    a.databaseUrl,
    `select id from sessions where user_id = $1 and revoke_time is null and expire_time > now()
     order by create_time desc, id desc`,
    [userId],
  );
  return rows.map((r) => r.id);
}

async function expectFailure(call: Promise<unknown>, code: Code, reason: string, violations?: string[]) {
  const f = await failure(call);
  expect([Code[f.code], f.reason]).toEqual([Code[code], reason]);
  if (violations) expect(f.violations).toEqual(violations);
}

describe("ListUserSessions", () => {
  for (const name of ["grpc", "connect-json-h1", "grpc-web-h1"] as TransportName[]) {
    it(`lists a user's live sessions newest first; current marks only the caller's own (${name})`, async () => {
      const m = await member(`admin-list-${name}`);
      const t = await loginFrom(a, m, "listed-agent/1");
      const res = await usersOf(admin, name).listUserSessions({ userId: m.user.id });
      expect(res.sessions.map((s) => s.id)).toEqual([sidOf(t.accessToken), sidOf(m.token)]);
      expect(res.sessions.map((s) => s.current)).toEqual([false, false]);
      expect(res.sessions[0]).toMatchObject({ userAgent: "listed-agent/1", clientAddress: "127.0.0.1" });
      expect(res.nextPageToken).toBe("");
      // An admin listing itself sees its own session as current.
      const adminUser = await authOf(a, admin).getCurrentUser({});
      const own = await usersOf(admin, name).listUserSessions({ userId: adminUser.user?.id ?? "" });
      expect(own.sessions.filter((s) => s.current).map((s) => s.id)).toEqual([sidOf(admin)]);
    });
  }

  it("pages by keyset across sessions of the same microsecond, 50 by default and at most 1000", async () => {
    const m = await member("admin-pages");
    await insertSessions(m.user.id, 1003, "1 millisecond 7 microseconds");
    // Twelve sessions created in the same microsecond, older than the rest: among the last 30 paged below.
    await insertSessions(m.user.id, 12, "0 seconds", "10 minutes");
    const expected = await liveIds(m.user.id);
    expect(expected).toHaveLength(1016);
    const users = usersOf(admin);
    expect((await users.listUserSessions({ userId: m.user.id })).sessions).toHaveLength(50);
    const big = await users.listUserSessions({ userId: m.user.id, pageSize: 5000 });
    expect(big.sessions).toHaveLength(1000);
    const rest = await users.listUserSessions({ userId: m.user.id, pageSize: 5000, pageToken: big.nextPageToken });
    expect([...big.sessions, ...rest.sessions].map((s) => s.id)).toEqual(expected);
    expect(rest.nextPageToken).toBe("");
    // Small pages through the tie, on both replicas in turn.
    const seen: string[] = [];
    let pageToken = "";
    let i = 0;
    const from = expected.length - 30;
    const tail = await users.listUserSessions({ userId: m.user.id, pageSize: from });
    pageToken = tail.nextPageToken;
    do {
      const page = await usersOf(admin, "grpc", i++ % 2 === 0 ? a : b).listUserSessions({
        userId: m.user.id,
        pageSize: 4,
        pageToken,
      });
      seen.push(...page.sessions.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(seen).toEqual(expected.slice(from));
    // A token is bound to the user it pages.
    const other = await member("admin-pages-other");
    await expectFailure(
      users.listUserSessions({ userId: other.user.id, pageSize: 4, pageToken: tail.nextPageToken }),
      Code.InvalidArgument,
      "INVALID_PAGE_TOKEN",
    );
    const t = tail.nextPageToken;
    await expectFailure(
      users.listUserSessions({ userId: m.user.id, pageToken: `${t.slice(0, -2)}${t.endsWith("AA") ? "BB" : "AA"}` }),
      Code.InvalidArgument,
      "INVALID_PAGE_TOKEN",
    );
  });

  it("answers USER_NOT_FOUND for an unknown user and INVALID_ARGUMENT for an id that is not a UUID", async () => {
    await expectFailure(usersOf(admin).listUserSessions({ userId: UNKNOWN }), Code.NotFound, "USER_NOT_FOUND");
    await expectFailure(usersOf(admin).listUserSessions({ userId: "nope" }), Code.InvalidArgument, "INVALID_ARGUMENT", [
      "user_id",
    ]);
  });

  it("refuses a non-admin, for its own user too", async () => {
    const m = await member("admin-list-denied");
    for (const userId of [m.user.id, UNKNOWN]) {
      await expectFailure(usersOf(m.token).listUserSessions({ userId }), Code.PermissionDenied, "PERMISSION_DENIED");
    }
  });
});

describe("RevokeUserSessions", () => {
  it("revokes one session (count 1, then 0 when repeated); its tokens die on both replicas", async () => {
    const m = await member("admin-revoke-one");
    const t = await loginFrom(a, m);
    await expectLiveAccess([a, b], t.accessToken);
    const started = performance.now();
    const res = await usersOf(admin).revokeUserSessions({ userId: m.user.id, sessionId: sidOf(t.accessToken) });
    expect(res.revokedCount).toBe(1);
    await expectDeadRefresh([a, b], t.refreshToken);
    await expectDeadAccess([a, b], [t.accessToken], started);
    await expectLiveAccess([a, b], m.token);
    const again = await usersOf(admin).revokeUserSessions({ userId: m.user.id, sessionId: sidOf(t.accessToken) });
    expect(again.revokedCount).toBe(0);
  });

  it("counts an expired session as not live, and revokes it all the same", async () => {
    const m = await member("admin-revoke-expired");
    const t = await loginFrom(a, m);
    await query(a.databaseUrl, "update sessions set expire_time = now() - interval '1 second' where id = $1", [
      sidOf(t.accessToken),
    ]);
    const res = await usersOf(admin).revokeUserSessions({ userId: m.user.id, sessionId: sidOf(t.accessToken) });
    expect(res.revokedCount).toBe(0);
    const [row] = await query<{ revoke_time: Date | null }>(
      a.databaseUrl,
      "select revoke_time from sessions where id = $1",
      [sidOf(t.accessToken)],
    );
    expect(row.revoke_time).not.toBeNull();
  });

  for (const name of ["grpc", "connect-json-h1", "grpc-web-h2"] as TransportName[]) {
    it(`revokes every session of a user, counting the live ones; every token dies on both replicas (${name})`, async () => {
      const m = await member(`admin-revoke-all-${name}`);
      const live = [await loginFrom(a, m), await loginFrom(b, m)];
      const out = await loginFrom(a, m);
      await authOf(a).logout({ refreshToken: out.refreshToken });
      const other = await member(`admin-revoke-all-other-${name}`);
      for (const t of live) await expectLiveAccess([a, b], t.accessToken);
      const started = performance.now();
      const res = await usersOf(admin, name).revokeUserSessions({ userId: m.user.id });
      // createMember's login and the two above; the logged-out one was not live.
      expect(res.revokedCount).toBe(3);
      for (const t of live) await expectDeadRefresh([a, b], t.refreshToken);
      const took = await expectDeadAccess([a, b], [m.token, ...live.map((t) => t.accessToken)], started);
      console.log(`RevokeUserSessions all (${name}): refused on both replicas after ${took.toFixed(0)} ms`);
      expect((await usersOf(admin).listUserSessions({ userId: m.user.id })).sessions).toEqual([]);
      // Another user is untouched; the user can log in again; nothing is left to revoke but the new session.
      await expectLiveAccess([a, b], other.token);
      const fresh = await loginFrom(a, m);
      await expectLiveAccess([a, b], fresh.accessToken);
      expect((await usersOf(admin, name).revokeUserSessions({ userId: m.user.id })).revokedCount).toBe(1);
      expect((await usersOf(admin, name).revokeUserSessions({ userId: m.user.id })).revokedCount).toBe(0);
    });
  }

  it("leaves no live token when refreshes race it, on either replica", async () => {
    const m = await member("admin-revoke-race");
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 12; i++) {
      const t = await loginFrom(a, m);
      const [refreshed] = await Promise.all([
        authOf(i % 2 === 0 ? a : b)
          .refreshToken({ refreshToken: t.refreshToken })
          .then(
            (r) => r.tokens as Tokens,
            () => undefined,
          ),
        usersOf(admin, "grpc", i % 3 === 0 ? b : a).revokeUserSessions({ userId: m.user.id }),
      ]);
      const key = refreshed ? "refresh won" : "refresh refused";
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      const tokens = [t.accessToken, ...(refreshed ? [refreshed.accessToken] : [])];
      if (refreshed) await expectDeadRefresh([a, b], refreshed.refreshToken);
      // Whichever replica revoked, the other learns from its poll: allow a second from now for both.
      await expectDeadAccess([i % 3 === 0 ? b : a, i % 3 === 0 ? a : b], tokens, performance.now());
    }
    console.log("RefreshToken vs RevokeUserSessions:", outcomes);
  }, 60_000);

  it("answers SESSION_NOT_FOUND for another user's session and USER_NOT_FOUND for an unknown user, changing nothing", async () => {
    const m = await member("admin-revoke-nf");
    const other = await member("admin-revoke-nf-other");
    await expectFailure(
      usersOf(admin).revokeUserSessions({ userId: m.user.id, sessionId: sidOf(other.token) }),
      Code.NotFound,
      "SESSION_NOT_FOUND",
    );
    await expectFailure(
      usersOf(admin).revokeUserSessions({ userId: m.user.id, sessionId: UNKNOWN }),
      Code.NotFound,
      "SESSION_NOT_FOUND",
    );
    await expectFailure(usersOf(admin).revokeUserSessions({ userId: UNKNOWN }), Code.NotFound, "USER_NOT_FOUND");
    await expectFailure(
      usersOf(admin).revokeUserSessions({ userId: UNKNOWN, sessionId: sidOf(other.token) }),
      Code.NotFound,
      "USER_NOT_FOUND",
    );
    await expectLiveAccess([a, b], other.token);
    await expectLiveAccess([a, b], m.token);
  });

  it("refuses ids that are not UUIDs with INVALID_ARGUMENT", async () => {
    const m = await member("admin-revoke-bad");
    await expectFailure(usersOf(admin).revokeUserSessions({ userId: "x" }), Code.InvalidArgument, "INVALID_ARGUMENT", [
      "user_id",
    ]);
    for (const sessionId of ["", "not-a-uuid"]) {
      await expectFailure(
        usersOf(admin).revokeUserSessions({ userId: m.user.id, sessionId }),
        Code.InvalidArgument,
        "INVALID_ARGUMENT",
        ["session_id"],
      );
    }
    await expectLiveAccess([a], m.token);
  });

  it("refuses a non-admin, for its own sessions too, and revokes nothing", async () => {
    const m: Member = await member("admin-revoke-denied");
    const victim = await member("admin-revoke-denied-victim");
    for (const req of [
      { userId: victim.user.id },
      { userId: victim.user.id, sessionId: sidOf(victim.token) },
      { userId: m.user.id },
    ]) {
      await expectFailure(usersOf(m.token).revokeUserSessions(req), Code.PermissionDenied, "PERMISSION_DENIED");
    }
    await expectLiveAccess([a, b], victim.token);
    await expectLiveAccess([a, b], m.token);
  });
});
