/**
 * ListSessions and RevokeSession over the wire (the caller's own sessions), on gRPC, Connect (binary and
 * JSON) and gRPC-web: the live sessions newest first with `current` on the caller's own, the times, client
 * address and user agent each login, refresh and ChangePassword recorded (X-Forwarded-For only through
 * TRUST_PROXY), paging with tamper-evident tokens, revocation that kills the session's refresh token at once
 * and its access tokens on this replica at once and on a second replica within a second, idempotent
 * revocation, and the same SESSION_NOT_FOUND for another user's session and an unknown one.
 */
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Session } from "../../gen/auth/v1/session_pb.js";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { payloadOf } from "../helpers/tokens.ts";
import { authOf, expectDeadAccess, expectDeadRefresh, expectLiveAccess, loginFrom, sidOf } from "./session-helpers.ts";

const DAY = 86_400_000;
let a: TestServer;
/** A second replica on the same database, behind a trusted proxy, with SESSION_MAX_AGE below REFRESH_TOKEN_TTL. */
let b: TestServer;
let admin: string;

beforeAll(async () => {
  a = await startTestServer();
  b = await startTestServer({ DATABASE_URL: a.databaseUrl, TRUST_PROXY: "true", SESSION_MAX_AGE: "10d" });
  admin = await adminToken(a.url);
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

/** A timestamp field in ms (NaN when unset, which fails any comparison). */
const msOf = (t: Timestamp | undefined) => (t ? timestampDate(t).getTime() : Number.NaN);

const member = (prefix: string) => createMember(a.url, admin, { prefix });

async function listAll(s: TestServer, token: string, name: TransportName = "grpc"): Promise<Session[]> {
  return (await authOf(s, token, {}, name).listSessions({})).sessions;
}

describe("ListSessions", () => {
  const transports: TransportName[] = ["grpc", "connect-h2", "connect-json-h1", "grpc-web-h1", "grpc-web-h2"];
  for (const name of transports) {
    it(`lists the caller's live sessions newest first, the caller's own marked current (${name})`, async () => {
      const m = await member(`list-${name}`);
      const older = await loginFrom(a, m, "agent-older/1");
      const newer = await loginFrom(a, m, "agent-newer/2");
      const before = Date.now();
      const sessions = await listAll(a, newer.accessToken, name);
      // createMember's own login, then the two above.
      expect(sessions.map((s) => s.id)).toEqual([sidOf(newer.accessToken), sidOf(older.accessToken), sidOf(m.token)]);
      expect(sessions.map((s) => s.current)).toEqual([true, false, false]);
      expect(sessions.map((s) => s.userAgent).slice(0, 2)).toEqual(["agent-newer/2", "agent-older/1"]);
      for (const s of sessions) {
        expect(s.clientAddress).toBe("127.0.0.1");
        const created = msOf(s.createTime);
        expect(before - created).toBeLessThan(30_000);
        expect(msOf(s.lastRefreshTime)).toBe(created);
        // Idle expiry (REFRESH_TOKEN_TTL, 30 days) comes before the absolute one (SESSION_MAX_AGE, 90 days).
        expect(msOf(s.expireTime) - created).toBe(30 * DAY);
      }
      // The other token sees the same list with its own session current.
      expect((await listAll(a, older.accessToken, name)).filter((s) => s.current).map((s) => s.id)).toEqual([
        sidOf(older.accessToken),
      ]);
    });
  }

  it("leaves out revoked (Logout) and expired sessions, and other users' sessions", async () => {
    const m = await member("list-live");
    const other = await member("list-other");
    const out = await loginFrom(a, m);
    await authOf(a).logout({ refreshToken: out.refreshToken });
    const expired = await loginFrom(a, m);
    await query(a.databaseUrl, "update sessions set expire_time = now() - interval '1 second' where id = $1", [
      sidOf(expired.accessToken),
    ]);
    const ids = (await listAll(a, m.token)).map((s) => s.id);
    expect(ids).toEqual([sidOf(m.token)]);
    expect(ids).not.toContain(sidOf(other.token));
  });

  it("records each refresh: last_refresh_time, idle expiry, client address and user agent of the refresh", async () => {
    const m = await member("list-refresh");
    const t = await loginFrom(a, m, "first-agent/1");
    const refreshed = await authOf(a, undefined, { "user-agent": "second-agent/2" }).refreshToken({
      refreshToken: t.refreshToken,
    });
    const token = refreshed.tokens?.accessToken ?? "";
    const [s] = (await listAll(a, token)).filter((x) => x.current);
    expect(s.id).toBe(sidOf(t.accessToken));
    expect(s.userAgent).toBe("second-agent/2");
    const created = msOf(s.createTime);
    const refreshedAt = msOf(s.lastRefreshTime);
    expect(refreshedAt).toBeGreaterThanOrEqual(created);
    expect(refreshedAt).toBe(Number(payloadOf(token).iat_ms));
    expect(msOf(s.expireTime)).toBe(refreshedAt + 30 * DAY);
  });

  it("behind a trusted proxy shows the address X-Forwarded-For names; expire_time honours a lowered SESSION_MAX_AGE", async () => {
    const m = await member("list-proxy");
    const t = await loginFrom(b, m, "proxied-agent/1", { "x-forwarded-for": "203.0.113.7, 127.0.0.1" });
    // Without TRUST_PROXY the header is the client's word, and is ignored.
    const direct = await loginFrom(a, m, "direct-agent/1", { "x-forwarded-for": "198.51.100.9" });
    const onB = await listAll(b, t.accessToken);
    const proxied = onB.find((s) => s.id === sidOf(t.accessToken));
    expect(proxied?.clientAddress).toBe("203.0.113.7");
    expect(proxied?.userAgent).toBe("proxied-agent/1");
    expect(onB.find((s) => s.id === sidOf(direct.accessToken))?.clientAddress).toBe("127.0.0.1");
    // Replica b runs with SESSION_MAX_AGE=10d: every session ends 10 days after its login there.
    for (const s of onB) {
      const created = msOf(s.createTime);
      expect(msOf(s.expireTime) - created).toBe(10 * DAY);
    }
  });

  it("records the client of a SignUp's session", async () => {
    const res = await authOf(a, undefined, { "user-agent": "signer/4" }).signUp({
      email: `signup-${Date.now()}@example.com`,
      password: "a sign-up password 1",
      displayName: "Signed Up",
    });
    const token = res.tokens?.accessToken ?? "";
    expect((await listAll(a, token)).map((s) => [s.id, s.current, s.userAgent, s.clientAddress])).toEqual([
      [sidOf(token), true, "signer/4", "127.0.0.1"],
    ]);
  });

  it("records the client of a ChangePassword's new session", async () => {
    const m = await member("list-change");
    const res = await authOf(a, m.token, { "user-agent": "changer/3" }).changePassword({
      currentPassword: m.password,
      newPassword: `${m.password}-new`,
    });
    const token = res.tokens?.accessToken ?? "";
    const sessions = await listAll(a, token);
    // ChangePassword revoked every other session.
    expect(sessions.map((s) => [s.id, s.current, s.userAgent, s.clientAddress])).toEqual([
      [sidOf(token), true, "changer/3", "127.0.0.1"],
    ]);
  });

  it("pages newest first with tokens; a tampered token, or another user's, is INVALID_PAGE_TOKEN", async () => {
    const m = await member("list-pages");
    const tokens = [m.token];
    for (let i = 0; i < 6; i++) tokens.push((await loginFrom(a, m)).accessToken);
    const me = authOf(a, tokens[6]);
    const all = (await me.listSessions({})).sessions.map((s) => s.id);
    expect(all).toEqual(tokens.map(sidOf).reverse());
    const seen: string[] = [];
    let pageToken = "";
    const sizes: number[] = [];
    do {
      const page = await me.listSessions({ pageSize: 3, pageToken });
      sizes.push(page.sessions.length);
      seen.push(...page.sessions.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toEqual(all);

    const first = await me.listSessions({ pageSize: 2 });
    const good = first.nextPageToken;
    const flipped = `${good.slice(0, 10)}${good[10] === "A" ? "B" : "A"}${good.slice(11)}`;
    for (const bad of [flipped, `${good}A`, "not a token!", good.slice(0, 20)]) {
      const f = await failure(me.listSessions({ pageSize: 2, pageToken: bad }));
      expect([Code[f.code], f.reason], bad).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
    }
    // A token is bound to the user whose sessions it pages.
    const other = await member("list-pages-other");
    const f = await failure(authOf(a, other.token).listSessions({ pageSize: 2, pageToken: good }));
    expect([Code[f.code], f.reason]).toEqual(["InvalidArgument", "INVALID_PAGE_TOKEN"]);
    // The good token still works, and so it does on the other replica (keys derive from the shared secret).
    expect(
      (await authOf(b, tokens[6]).listSessions({ pageSize: 2, pageToken: good })).sessions.map((s) => s.id),
    ).toEqual(all.slice(2, 4));
    const neg = await failure(me.listSessions({ pageSize: -1 }));
    expect([Code[neg.code], neg.reason, neg.violations]).toEqual([
      "InvalidArgument",
      "INVALID_ARGUMENT",
      ["page_size"],
    ]);
  });

  it("needs a token", async () => {
    const f = await failure(authOf(a).listSessions({}));
    expect([Code[f.code], f.reason]).toEqual(["Unauthenticated", "UNAUTHENTICATED"]);
  });
});

describe("RevokeSession", () => {
  for (const name of ["grpc", "connect-json-h1", "grpc-web-h2"] as TransportName[]) {
    it(`ends one own session: its refresh token at once, its access tokens here at once and on the other replica within 1 s (${name})`, async () => {
      const m = await member(`revoke-${name}`);
      const victim = await loginFrom(a, m);
      // A rotation, so the session has two access tokens (both must die) and a used refresh token.
      const rotated = await authOf(a).refreshToken({ refreshToken: victim.refreshToken });
      const next = rotated.tokens;
      if (!next) throw new Error("no tokens");
      // Seen as live on the other replica first (its check has cached the token's verification).
      await expectLiveAccess([a, b], next.accessToken);
      const started = performance.now();
      await authOf(a, m.token, {}, name).revokeSession({ sessionId: sidOf(victim.accessToken) });
      await expectDeadRefresh([a, b], next.refreshToken);
      const took = await expectDeadAccess([a, b], [next.accessToken, victim.accessToken], started);
      console.log(`RevokeSession (${name}): access tokens refused on both replicas after ${took.toFixed(0)} ms`);
      // The caller's own session is untouched, and no longer lists the revoked one.
      expect((await listAll(a, m.token)).map((s) => s.id)).toEqual([sidOf(m.token)]);
      // Revoking it again is fine and changes nothing.
      await authOf(a, m.token, {}, name).revokeSession({ sessionId: sidOf(victim.accessToken) });
      await expectLiveAccess([a, b], m.token);
    });
  }

  it("may end the caller's current session", async () => {
    const m = await member("revoke-self");
    const t = await loginFrom(a, m);
    await authOf(a, t.accessToken).revokeSession({ sessionId: sidOf(t.accessToken) });
    await expectDeadAccess([a, b], [t.accessToken], performance.now());
    await expectDeadRefresh([a], t.refreshToken);
  });

  it("answers SESSION_NOT_FOUND alike for another user's session and an unknown id, and changes nothing", async () => {
    const m = await member("revoke-notfound");
    const other = await member("revoke-victim");
    const otherSession = await loginFrom(a, other);
    const unknown = "00000000-0000-4000-8000-000000000000";
    const answers = [];
    for (const id of [sidOf(otherSession.accessToken), unknown]) {
      const f = await failure(authOf(a, m.token).revokeSession({ sessionId: id }));
      answers.push([Code[f.code], f.reason, f.message.replace(id, "<id>")]);
    }
    expect(answers[0]).toEqual(["NotFound", "SESSION_NOT_FOUND", "session <id> not found"]);
    expect(answers[1]).toEqual(answers[0]);
    await expectLiveAccess([a, b], otherSession.accessToken);
    expect((await authOf(a).refreshToken({ refreshToken: otherSession.refreshToken })).tokens).toBeDefined();
  });

  it("refuses an id that is not a UUID with INVALID_ARGUMENT", async () => {
    const m = await member("revoke-bad");
    for (const sessionId of ["not-a-uuid", "", "'; drop table sessions; --"]) {
      const f = await failure(authOf(a, m.token).revokeSession({ sessionId }));
      expect([Code[f.code], f.reason, f.violations], sessionId).toEqual([
        "InvalidArgument",
        "INVALID_ARGUMENT",
        ["session_id"],
      ]);
    }
    await expectLiveAccess([a], m.token);
  });

  it("logs no token", async () => {
    const m = await member("revoke-logs");
    const t = await loginFrom(a, m);
    await authOf(a, m.token).revokeSession({ sessionId: sidOf(t.accessToken) });
    for (const s of [a, b]) {
      const text = s.logText();
      for (const secret of [t.accessToken, t.refreshToken, m.token, m.password]) expect(text).not.toContain(secret);
    }
  });
});
