/**
 * Refresh races over the wire (issue 13): a RefreshToken racing a Logout, a ChangePassword or a reuse
 * detection must never leave a live token behind. After each race, the refresh token the racing refresh
 * returned (if it won) cannot rotate, and every access token the race produced, the racing refresh's
 * included, is refused by GetCurrentUser on both replicas (the other one within a second, its poll). Two
 * replicas share the database, and half the races send the two calls to different replicas.
 *
 * Also: SESSION_MAX_AGE caps a session however often it rotates, and a replica remembers a revoked session
 * until the last access token issued in it has expired (unit level, over the real database).
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { createRevokedSessions } from "../../src/auth/revoked-sessions.ts";
import { createLogger } from "../../src/logger.ts";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { payloadOf } from "../helpers/tokens.ts";

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

const auth = (s: TestServer, token?: string) => clients(s.url, "grpc", token ? () => token : undefined).auth;

async function login(s: TestServer, m: { email: string; password: string }): Promise<Tokens> {
  const res = await auth(s).login({ email: m.email, password: m.password });
  if (!res.tokens) throw new Error("no tokens");
  return res.tokens;
}

/** The outcome of a call in a race: its tokens, or the code it failed with. */
async function settle(call: Promise<{ tokens?: Tokens }>): Promise<Tokens | string> {
  try {
    const res = await call;
    if (!res.tokens) throw new Error("no tokens");
    return res.tokens;
  } catch (err) {
    return Code[(err as { code: Code }).code];
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The refresh token must not rotate, on either replica. */
async function expectDeadRefresh(refreshToken: string): Promise<void> {
  for (const s of [a, b]) {
    const f = await failure(auth(s).refreshToken({ refreshToken }));
    expect([Code[f.code], f.reason]).toEqual(["Unauthenticated", "UNAUTHENTICATED"]);
  }
}

/** Every access token must be refused by GetCurrentUser on both replicas within a second (the poll). */
async function expectDeadAccess(tokens: string[]): Promise<void> {
  const started = performance.now();
  for (const token of tokens) {
    for (const s of [a, b]) {
      for (;;) {
        const f = await failure(auth(s, token).getCurrentUser({})).catch(() => undefined);
        if (f) {
          expect([Code[f.code], f.reason, f.message]).toEqual([
            "Unauthenticated",
            "UNAUTHENTICATED",
            "invalid or revoked token",
          ]);
          break;
        }
        expect(performance.now() - started, "a token still works after a second").toBeLessThan(1000);
        await sleep(20);
      }
    }
  }
}

/** Counts how races ended, to show both orders happen (printed, not asserted: timing decides). */
function tally(outcomes: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}

describe("RefreshToken racing Logout", () => {
  it("30 races leave no live refresh or access token", async () => {
    const m = await createMember(a.url, admin, { prefix: "race-logout" });
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const t = await login(a, m);
      // Half the races across replicas; the delays shift which call gets the session row first.
      const refreshAt = i % 2 === 0 ? a : b;
      const [refreshed] = await Promise.all([
        sleep(i % 3).then(() => settle(auth(refreshAt).refreshToken({ refreshToken: t.refreshToken }))),
        sleep((i >> 1) % 3).then(() => auth(a).logout({ refreshToken: t.refreshToken })),
      ]);
      outcomes.push(typeof refreshed === "string" ? `refresh ${refreshed}` : "refresh won");
      await expectDeadRefresh(t.refreshToken);
      if (typeof refreshed !== "string") await expectDeadRefresh(refreshed.refreshToken);
      await expectDeadAccess([t.accessToken, ...(typeof refreshed === "string" ? [] : [refreshed.accessToken])]);
    }
    console.log("RefreshToken vs Logout:", tally(outcomes));
    // The account itself is fine: a new login works.
    expect((await auth(a, (await login(a, m)).accessToken).getCurrentUser({})).user?.id).toBe(m.user.id);
  }, 120_000);
});

describe("RefreshToken racing ChangePassword", () => {
  it("20 races leave no live token but the ones ChangePassword returned", async () => {
    const m: Member = await createMember(a.url, admin, { prefix: "race-chpw" });
    let password = m.password;
    // The window that matters is ChangePassword's transaction, at the very end of the call (after two
    // hashes). A client refreshing back to back, from just before it until it is refused, has a rotation in
    // flight at that moment in most races, whichever replica it uses.
    let length = 0;
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      let live = await login(a, { email: m.email, password });
      const first = live;
      const issued = [live.accessToken];
      let changing = true;
      const next = `pw-${randomUUID()}`;
      const t0 = performance.now();
      const change = auth(a, live.accessToken)
        .changePassword({ currentPassword: password, newPassword: next })
        .finally(() => {
          length = performance.now() - t0;
        });
      const chain = (async () => {
        await sleep(Math.max(0, length - 40 - (i % 5) * 5));
        // Until refused, and at most 50 rotations once ChangePassword has answered.
        for (let after = 0; after < 50; after += changing ? 0 : 1) {
          const r = await settle(auth(i % 2 === 0 ? a : b).refreshToken({ refreshToken: live.refreshToken }));
          if (typeof r === "string") return r;
          live = r;
          issued.push(r.accessToken);
        }
        return "still rotating";
      })();
      const changed = await change.finally(() => {
        changing = false;
      });
      password = next;
      const ended = await chain;
      expect(ended).toBe("Unauthenticated");
      outcomes.push(`${issued.length - 1} rotations`);
      await expectDeadRefresh(first.refreshToken);
      await expectDeadRefresh(live.refreshToken);
      await expectDeadAccess(issued);
      // The session ChangePassword started lives, on both replicas.
      const fresh = changed.tokens as Tokens;
      for (const s of [a, b]) expect((await auth(s, fresh.accessToken).getCurrentUser({})).user?.id).toBe(m.user.id);
    }
    console.log("RefreshToken vs ChangePassword:", tally(outcomes), `(ChangePassword takes ~${Math.round(length)} ms)`);
  }, 180_000);
});

describe("RefreshToken racing a reuse detection", () => {
  it("the rotation and the replay of an older token leave the session dead, whichever comes first", async () => {
    const m = await createMember(a.url, admin, { prefix: "race-reuse" });
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const first = await login(a, m);
      const second = (await auth(a).refreshToken({ refreshToken: first.refreshToken })).tokens as Tokens;
      const [rotated, replayed] = await Promise.all([
        sleep(i % 3).then(() => settle(auth(i % 2 === 0 ? a : b).refreshToken({ refreshToken: second.refreshToken }))),
        sleep((i >> 1) % 3).then(() => settle(auth(a).refreshToken({ refreshToken: first.refreshToken }))),
      ]);
      expect(replayed).toBe("Unauthenticated");
      outcomes.push(typeof rotated === "string" ? `rotation ${rotated}` : "rotation won");
      for (const r of [first.refreshToken, second.refreshToken]) await expectDeadRefresh(r);
      if (typeof rotated !== "string") await expectDeadRefresh(rotated.refreshToken);
      await expectDeadAccess([
        first.accessToken,
        second.accessToken,
        ...(typeof rotated === "string" ? [] : [rotated.accessToken]),
      ]);
    }
    console.log("RefreshToken vs reuse detection:", tally(outcomes));
  }, 120_000);
});

describe("SESSION_MAX_AGE", () => {
  let capped: TestServer;
  beforeAll(async () => {
    capped = await startTestServer({ SESSION_MAX_AGE: "3s" });
  });
  afterAll(() => capped?.close());

  it("ends a session 3 s after its login however often it rotates; no refresh token outlives it", async () => {
    const loggedIn = Date.now();
    let t = (await auth(capped).login({ email: "admin@example.com", password: "admin-password-123" })).tokens as Tokens;
    const sid = String(payloadOf(t.accessToken).sid);
    let rotations = 0;
    let refusedAt = 0;
    while (Date.now() - loggedIn < 6000) {
      await sleep(250);
      const res = await settle(auth(capped).refreshToken({ refreshToken: t.refreshToken }));
      if (typeof res === "string") {
        expect(res).toBe("Unauthenticated");
        refusedAt = Date.now();
        break;
      }
      t = res;
      rotations++;
    }
    expect(rotations).toBeGreaterThanOrEqual(8);
    expect(refusedAt - loggedIn).toBeGreaterThanOrEqual(3000);
    expect(refusedAt - loggedIn).toBeLessThan(3000 + 1000);
    const [row] = await query<{ create_time: Date; max_expire_time: Date; expire_time: Date }>(
      capped.databaseUrl,
      "select create_time, max_expire_time, expire_time from sessions where id = $1",
      [sid],
    );
    expect(row.max_expire_time.getTime() - row.create_time.getTime()).toBe(3000);
    expect(row.expire_time.getTime()).toBeLessThanOrEqual(row.max_expire_time.getTime());
    const [latest] = await query<{ n: string }>(
      capped.databaseUrl,
      "select count(*) as n from refresh_tokens where family_id = $1 and expire_time > $2",
      [sid, row.max_expire_time],
    );
    expect(Number(latest.n)).toBe(0);
    // Refused for good: the latest token stays refused.
    const f = await failure(auth(capped).refreshToken({ refreshToken: t.refreshToken }));
    expect(f.reason).toBe("UNAUTHENTICATED");
  }, 20_000);
});

describe("a replica's memory of revoked sessions", () => {
  let pool: pg.Pool;
  let userId: string;
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: a.databaseUrl, max: 2 });
    userId = (await createMember(a.url, admin, { prefix: "memory" })).user.id;
  });
  afterAll(() => pool?.end());

  /** A session row with the given times (ms from now); returns its id. */
  async function session(lastRefreshMs: number, revokeMs: number): Promise<string> {
    const id = randomUUID();
    await pool.query(
      `insert into sessions (id, user_id, create_time, last_refresh_time, expire_time, max_expire_time, revoke_time)
       values ($1, $2, now() - interval '1 hour', now() + make_interval(secs => $3::double precision / 1000),
               now() + interval '1 day', now() + interval '1 day', now() + make_interval(secs => $4::double precision / 1000))`,
      [id, userId, lastRefreshMs, revokeMs],
    );
    return id;
  }

  it("keeps each entry until max(revoke_time, last_refresh_time) + keepMs, then forgets it", async () => {
    const keepMs = 1500;
    // Issued by a replica whose clock is ahead (or revoked by one whose clock is behind): last refresh wins.
    const ahead = await session(1000, 0);
    const plain = await session(-200, 0);
    const old = await session(-3_700_000, -3_600_000);
    const registry = createRevokedSessions({ pool, keepMs, log: createLogger("silent"), pollMs: 50 });
    await registry.start();
    try {
      const [r] = (
        await pool.query<{ lrt: Date; rt: Date }>(
          "select last_refresh_time as lrt, revoke_time as rt from sessions where id = $1",
          [ahead],
        )
      ).rows;
      expect(registry.keptUntil(ahead)).toBe(r.lrt.getTime() + keepMs);
      expect(registry.keptUntil(plain)).toBeGreaterThanOrEqual(r.rt.getTime() + keepMs - 50);
      expect(registry.has(old)).toBe(false);
      // Forgotten only once keptUntil has passed.
      const plainUntil = registry.keptUntil(plain) ?? 0;
      while (Date.now() < plainUntil - 100) {
        expect(registry.has(plain)).toBe(true);
        await sleep(100);
      }
      await sleep(plainUntil - Date.now() + 200);
      expect(registry.has(plain)).toBe(false);
      expect(registry.has(ahead)).toBe(true);
      // A revocation this replica made: remembered from the session's last refresh when that is later.
      const later = new Date(Date.now() + 5000);
      registry.add({ id: "local", lastRefreshTime: later });
      expect(registry.keptUntil("local")).toBe(later.getTime() + keepMs);
    } finally {
      registry.close();
    }
  });

  it("over the wire: an access token expires no later than its session's last_refresh_time + ACCESS_TOKEN_TTL", async () => {
    const m = await createMember(a.url, admin, { prefix: "exp-from-db" });
    const t = (await auth(a).refreshToken({ refreshToken: (await login(a, m)).refreshToken })).tokens as Tokens;
    const claims = payloadOf(t.accessToken);
    const [row] = await query<{ last_refresh_time: Date }>(
      a.databaseUrl,
      "select last_refresh_time from sessions where id = $1",
      [claims.sid],
    );
    // The token's instant is the one the database recorded, and exp follows from it, not from signing time.
    expect(claims.iat_ms).toBe(row.last_refresh_time.getTime());
    expect(Number(claims.exp) * 1000).toBeLessThanOrEqual(row.last_refresh_time.getTime() + 15 * 60_000);
    expect(Number(claims.exp) * 1000).toBeGreaterThan(row.last_refresh_time.getTime() + 15 * 60_000 - 1000);
  });
});

it("the races logged no unexpected error (a deadlock between a rotation and a revocation would)", () => {
  const errors = [...a.logs, ...b.logs].filter((l) => Number(l.level) >= 50);
  expect(errors.map((l) => `${l.method} ${l.errorName ?? ""} ${l.msg}`)).toEqual([]);
});
