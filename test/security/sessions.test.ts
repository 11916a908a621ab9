/**
 * Session security over the wire: refresh-token rotation; reuse of a rotated token (a stolen token replayed)
 * revokes the whole family, so the thief's and the victim's next refresh both fail, whoever replays first,
 * while the user's other sessions live on; concurrent use of one token lets exactly one through; Logout
 * ends the family, its access tokens included (on every replica within a second); ChangePassword kills
 * every earlier access token and every other session, and the new tokens work; suspended and deleted users
 * can neither log in nor refresh. Each login is one session row (which records where it is used from); a
 * session older than the user's tokens_valid_after never rotates; a family without a row (left by a
 * replica of the previous version during a rolling update) gets one when it rotates. The races are in
 * session-races.test.ts.
 */

import { randomBytes, randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { createOrm } from "../../src/db/orm.ts";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { payloadOf } from "../helpers/tokens.ts";
import { withDatabase } from "../helpers/urls.ts";
import { expectInvalidToken } from "./expect.ts";

let server: TestServer;
let admin: string;
let anon: Clients;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
  anon = clients(server.url, "grpc");
});
afterAll(() => server?.close());

async function session(m: Member): Promise<Tokens> {
  const res = await anon.auth.login({ email: m.email, password: m.password });
  if (!res.tokens) throw new Error("no tokens");
  return res.tokens;
}

async function refresh(refreshToken: string): Promise<Tokens> {
  const res = await anon.auth.refreshToken({ refreshToken });
  if (!res.tokens) throw new Error("no tokens");
  return res.tokens;
}

/** A refresh that must fail: UNAUTHENTICATED, with nothing about why. */
async function refused(refreshToken: string): Promise<void> {
  const f = await failure(anon.auth.refreshToken({ refreshToken }));
  expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: "Unauthenticated", reason: "UNAUTHENTICATED" });
  expect(f.message).not.toContain(refreshToken);
}

const me = (accessToken: string) => clients(server.url, "connect-h1", () => accessToken).auth.getCurrentUser({});
const newMember = (prefix: string) => createMember(server.url, admin, { prefix });

describe("refresh-token rotation", () => {
  it("hands out a new pair each time; each access token works; the refresh token is opaque", async () => {
    const m = await newMember("rotate");
    let t = await session(m);
    const seen = new Set([t.refreshToken]);
    for (let i = 0; i < 3; i++) {
      t = await refresh(t.refreshToken);
      expect(seen.has(t.refreshToken)).toBe(false);
      seen.add(t.refreshToken);
      expect(t.tokenType).toBe("Bearer");
      expect(t.refreshToken.split(".")).toHaveLength(1);
      expect((await me(t.accessToken)).user?.id).toBe(m.user.id);
    }
  });

  it("stores only hashes of refresh tokens", async () => {
    const m = await newMember("hashes");
    const t = await session(m);
    const hits = await query(
      server.databaseUrl,
      "select 1 from refresh_tokens where encode(token_hash, 'escape') like $1",
      [`%${t.refreshToken}%`],
    );
    expect(hits).toHaveLength(0);
  });

  it("refuses garbage, empty-ish and unknown refresh tokens alike", async () => {
    for (const bad of ["xyzzy", "A".repeat(43), "not-a-token-at-all", "' or 1=1 --"]) await refused(bad);
  });
});

describe("reuse of a rotated refresh token", () => {
  it("when the victim refreshed first: the thief's replay fails and the victim's next refresh fails too", async () => {
    const m = await newMember("victim-first");
    const stolen = (await session(m)).refreshToken;
    const victim = await refresh(stolen);
    await refused(stolen); // the thief replays the stolen, already used token
    await refused(victim.refreshToken); // the whole family is gone
  });

  it("when the thief refreshed first: the victim's use fails, and so does the thief's new token", async () => {
    const m = await newMember("thief-first");
    const stolen = (await session(m)).refreshToken;
    const thief = await refresh(stolen);
    await refused(stolen); // the victim, still holding the rotated token
    await refused(thief.refreshToken);
  });

  it("revokes only that family: another session of the same user keeps refreshing", async () => {
    const m = await newMember("other-family");
    const other = await session(m);
    const stolen = (await session(m)).refreshToken;
    await refresh(stolen);
    await refused(stolen);
    expect((await refresh(other.refreshToken)).refreshToken).not.toBe("");
  });

  it("revokes the family's access tokens too, and no other session's", async () => {
    const m = await newMember("reuse-access");
    const other = await session(m);
    const first = await session(m);
    const thief = await refresh(first.refreshToken);
    expect((await me(thief.accessToken)).user?.id).toBe(m.user.id);
    await refused(first.refreshToken); // the victim presents the rotated token: theft detected
    await expectInvalidToken(me(thief.accessToken));
    await expectInvalidToken(me(first.accessToken));
    expect((await me(other.accessToken)).user?.id).toBe(m.user.id);
  });

  it("under concurrency: of 10 simultaneous uses of one token at most one succeeds", async () => {
    const m = await newMember("race");
    const t = (await session(m)).refreshToken;
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => refresh(t)));
    expect(results.filter((r) => r.status === "fulfilled").length).toBeLessThanOrEqual(1);
  });
});

describe("Logout", () => {
  it("revokes the family: the current and earlier refresh tokens stop working", async () => {
    const m = await newMember("logout");
    const first = await session(m);
    const second = await refresh(first.refreshToken);
    await anon.auth.logout({ refreshToken: second.refreshToken });
    await refused(second.refreshToken);
    await refused(first.refreshToken);
  });

  it("revokes the session's access tokens at once, on this replica and within a second on another", async () => {
    const m = await newMember("logout-access");
    const kept = await session(m);
    const t = await session(m);
    const replica = await startTestServer({ DATABASE_URL: server.databaseUrl });
    try {
      const meThere = (accessToken: string) => clients(replica.url, "grpc", () => accessToken).auth.getCurrentUser({});
      expect((await meThere(t.accessToken)).user?.id).toBe(m.user.id);
      await anon.auth.logout({ refreshToken: t.refreshToken });
      await expectInvalidToken(me(t.accessToken));
      const started = performance.now();
      for (;;) {
        const refusedThere = await meThere(t.accessToken).then(
          () => false,
          () => true,
        );
        if (refusedThere) break;
        expect(performance.now() - started).toBeLessThan(1000);
        await new Promise((r) => setTimeout(r, 20));
      }
      await expectInvalidToken(meThere(t.accessToken));
      // The user's other session is untouched, on both replicas.
      expect((await me(kept.accessToken)).user?.id).toBe(m.user.id);
      expect((await meThere(kept.accessToken)).user?.id).toBe(m.user.id);
    } finally {
      await replica.close();
    }
  });

  it("ends a watch opened with the session's access token", async () => {
    const t = await anon.auth.login({ email: "admin@example.com", password: "admin-password-123" });
    const token = t.tokens?.accessToken ?? "";
    const ended = (async () => {
      for await (const _ of clients(server.url, "grpc", () => token).users.watchUsers({})) {
        // heartbeats only
      }
    })().then(
      () => "ended without error",
      (e: unknown) => Code[(e as { code: Code }).code],
    );
    await new Promise((r) => setTimeout(r, 200));
    await anon.auth.logout({ refreshToken: t.tokens?.refreshToken ?? "" });
    // The watch re-checks its caller when it wakes: at the latest with the next heartbeat or change.
    await createMember(server.url, admin, { prefix: "wake-the-watch" });
    expect(await ended).toBe("Unauthenticated");
  });

  it("answers the same for an unknown token (no oracle)", async () => {
    expect(await anon.auth.logout({ refreshToken: "unknown-token" })).toBeDefined();
  });
});

describe("ChangePassword", () => {
  it("revokes every earlier access token and every other session; the new tokens work", async () => {
    const m = await newMember("chpw");
    const a = await session(m);
    const b = await session(m);
    const res = await clients(server.url, "grpc", () => a.accessToken).auth.changePassword({
      currentPassword: m.password,
      newPassword: "a brand new password",
    });
    const fresh = res.tokens as Tokens;
    await expectInvalidToken(me(a.accessToken)); // the token that made the call
    await expectInvalidToken(me(b.accessToken)); // another session's token
    await refused(a.refreshToken);
    await refused(b.refreshToken);
    expect((await me(fresh.accessToken)).user?.id).toBe(m.user.id);
    expect((await refresh(fresh.refreshToken)).accessToken).not.toBe("");
    // The old password is dead, the new one works.
    expect((await failure(anon.auth.login({ email: m.email, password: m.password }))).reason).toBe(
      "INVALID_CREDENTIALS",
    );
    expect((await anon.auth.login({ email: m.email, password: "a brand new password" })).user?.id).toBe(m.user.id);
  });

  it("with a wrong current password is INVALID_CREDENTIALS and changes nothing", async () => {
    const m = await newMember("chpw-wrong");
    const a = await session(m);
    const f = await failure(
      clients(server.url, "grpc", () => a.accessToken).auth.changePassword({
        currentPassword: "not my password",
        newPassword: "whatever-password",
      }),
    );
    expect([Code[f.code], f.reason]).toEqual(["Unauthenticated", "INVALID_CREDENTIALS"]);
    expect((await me(a.accessToken)).user?.id).toBe(m.user.id);
    expect((await refresh(a.refreshToken)).accessToken).not.toBe("");
  });
});

describe("a suspended or deleted user", () => {
  const setState = (id: string, state: UserState) =>
    clients(server.url, "grpc", () => admin).users.updateUser({
      user: { id, state },
      updateMask: { paths: ["state"] },
    });

  it("when suspended, cannot log in (even with the right password) or refresh", async () => {
    const m = await newMember("suspended");
    const t = await session(m);
    await setState(m.user.id, UserState.SUSPENDED);
    const f = await failure(anon.auth.login({ email: m.email, password: m.password }));
    expect(f.code).not.toBe(Code.Unknown);
    expect([Code.PermissionDenied, Code.Unauthenticated]).toContain(f.code);
    await refused(t.refreshToken);
    // Reactivation does not resurrect the sessions the suspension ended.
    await setState(m.user.id, UserState.ACTIVE);
    await refused(t.refreshToken);
    expect((await anon.auth.login({ email: m.email, password: m.password })).user?.id).toBe(m.user.id);
  });

  it("when deleted, cannot log in (INVALID_CREDENTIALS, as for an unknown email) or refresh", async () => {
    const m = await newMember("deleted");
    const t = await session(m);
    await clients(server.url, "grpc", () => admin).users.deleteUser({ userId: m.user.id });
    const f = await failure(anon.auth.login({ email: m.email, password: m.password }));
    expect([Code[f.code], f.reason]).toEqual(["Unauthenticated", "INVALID_CREDENTIALS"]);
    await refused(t.refreshToken);
    await expectInvalidToken(me(t.accessToken));
  });

  it("when deleted, cannot be resurrected by a refresh token rotated before the deletion", async () => {
    const m = await newMember("deleted-rotated");
    const t1 = await session(m);
    const t2 = await refresh(t1.refreshToken);
    await clients(server.url, "grpc", () => admin).users.deleteUser({ userId: m.user.id });
    await clients(server.url, "grpc", () => admin).users.undeleteUser({ userId: m.user.id });
    await refused(t2.refreshToken);
  });
});

describe("UserService with a refresh token as bearer", () => {
  it("is refused: a refresh token is not an access token", async () => {
    const m = await newMember("confused");
    const t = await session(m);
    await expectInvalidToken(clients(server.url, "grpc", () => t.refreshToken).users.getUser({ userId: m.user.id }));
  });
});

describe("the session row", () => {
  it("is one per login; rotation moves its last refresh and idle expiry; it records address and user agent", async () => {
    const m = await newMember("row");
    const res = await anon.auth.login(
      { email: m.email, password: m.password },
      { headers: { "user-agent": "sessions-test/1.0" } },
    );
    let t = res.tokens as Tokens;
    const sid = String(payloadOf(t.accessToken).sid);
    for (let i = 0; i < 3; i++) {
      t = await refresh(t.refreshToken);
      expect(payloadOf(t.accessToken).sid).toBe(sid);
    }
    const rows = await query<{
      id: string;
      create_time: Date;
      last_refresh_time: Date;
      expire_time: Date;
      max_expire_time: Date;
      revoke_time: Date | null;
      client_address: string;
      user_agent: string;
    }>(server.databaseUrl, "select * from sessions where user_id = $1 and id = $2", [m.user.id, sid]);
    expect(rows).toHaveLength(1);
    const r = rows[0];
    expect(r.client_address).toMatch(/127\.0\.0\.1/);
    expect(r.user_agent).toEqual(expect.any(String));
    expect(r.revoke_time).toBeNull();
    expect(r.last_refresh_time.getTime()).toBe(Number(payloadOf(t.accessToken).iat_ms));
    expect(r.expire_time.getTime() - r.last_refresh_time.getTime()).toBe(30 * 86_400_000);
    expect(r.max_expire_time.getTime() - r.create_time.getTime()).toBe(90 * 86_400_000);
    const tokens = await query<{ n: string }>(
      server.databaseUrl,
      "select count(*) as n from refresh_tokens where family_id = $1",
      [sid],
    );
    expect(Number(tokens[0].n)).toBe(4);
    await anon.auth.logout({ refreshToken: t.refreshToken });
    const [after] = await query<{ revoke_time: Date | null }>(
      server.databaseUrl,
      "select revoke_time from sessions where id = $1",
      [sid],
    );
    expect(after.revoke_time).not.toBeNull();
  });

  it("never rotates when it started before the user's tokens_valid_after, even if not marked revoked", async () => {
    const m = await newMember("valid-after");
    const t = await session(m);
    await query(server.databaseUrl, "update users set tokens_valid_after = now() where id = $1", [m.user.id]);
    await refused(t.refreshToken);
  });

  it("is created when a family without one rotates (a token of the previous version, rolling update)", async () => {
    const m = await newMember("legacy");
    const t = await session(m);
    const sid = String(payloadOf(t.accessToken).sid);
    const [before] = await query<{ create_time: Date }>(
      server.databaseUrl,
      "delete from sessions where id = $1 returning create_time",
      [sid],
    );
    const next = await refresh(t.refreshToken);
    expect(payloadOf(next.accessToken).sid).toBe(sid);
    const [row] = await query<{ create_time: Date; max_expire_time: Date }>(
      server.databaseUrl,
      "select create_time, max_expire_time from sessions where id = $1",
      [sid],
    );
    expect(row.create_time.getTime()).toBe(before.create_time.getTime());
    expect(row.max_expire_time.getTime() - row.create_time.getTime()).toBe(90 * 86_400_000);
    await refused(t.refreshToken); // and reuse detection works on it as on any session
    await refused(next.refreshToken);
  });
});

describe("the migration to session rows", () => {
  it("gives every existing family one session, revoked when any of its tokens was, capped at 90 days", async () => {
    const name = `t_backfill_${randomBytes(4).toString("hex")}`;
    await query(inject("pgAdminUrl"), `create database ${name}`);
    const url = withDatabase(inject("pgAdminUrl"), name);
    const orm = await createOrm(url, 2);
    try {
      await orm.migrator.up({ to: "Migration20261122000500" });
      const user = randomUUID();
      await query(
        url,
        `insert into users (id, email, display_name, role, state, create_time, update_time)
         values ($1, 'old@example.com', 'Old', 'user', 'active', now(), now())`,
        [user],
      );
      const [live, revoked] = [randomUUID(), randomUUID()];
      // live: logged in 10 days ago, rotated twice; revoked: one of its tokens revoked (a Logout).
      const token = (family: string, created: string, expires: string, used: boolean, revoke: boolean) =>
        query(
          url,
          `insert into refresh_tokens (id, user_id, family_id, token_hash, create_time, expire_time, used_time, revoke_time)
           values ($1, $2, $3, $4, now() - $5::interval, now() + $6::interval,
                   case when $7 then now() end, case when $8 then now() - interval '1 hour' end)`,
          [randomUUID(), user, family, randomBytes(32), created, expires, used, revoke],
        );
      await token(live, "10 days", "20 days", true, false);
      await token(live, "5 days", "25 days", true, false);
      await token(live, "1 day", "29 days", false, false);
      await token(revoked, "2 days", "28 days", true, true);
      await token(revoked, "1 day", "29 days", false, true);
      await orm.migrator.up();
      const rows = await query<{
        id: string;
        user_id: string;
        age_days: number;
        last_refresh_days: number;
        expire_days: number;
        max_days: number;
        revoked: boolean;
      }>(
        url,
        `select id, user_id,
           round(extract(epoch from now() - create_time) / 86400)::int as age_days,
           round(extract(epoch from now() - last_refresh_time) / 86400)::int as last_refresh_days,
           round(extract(epoch from expire_time - now()) / 86400)::int as expire_days,
           round(extract(epoch from max_expire_time - create_time) / 86400)::int as max_days,
           revoke_time is not null as revoked
         from sessions order by age_days desc`,
      );
      expect(rows).toEqual([
        { id: live, user_id: user, age_days: 10, last_refresh_days: 1, expire_days: 29, max_days: 90, revoked: false },
        { id: revoked, user_id: user, age_days: 2, last_refresh_days: 1, expire_days: 29, max_days: 90, revoked: true },
      ]);
    } finally {
      await orm.close(true);
    }
  });
});

describe("the pruner", () => {
  it("deletes sessions a day past their end, and keeps the others (revoked ones included)", async () => {
    const pruning = await startTestServer({ PRUNE_INTERVAL: "100ms" });
    try {
      const [{ id: user }] = await query<{ id: string }>(
        pruning.databaseUrl,
        "select id from users where role = 'admin'",
      );
      const ended = randomUUID();
      const recent = randomUUID();
      const revoked = randomUUID();
      for (const [id, end, revoke] of [
        [ended, "now() - interval '2 days'", "null"],
        [recent, "now() - interval '1 hour'", "null"],
        [revoked, "now() + interval '29 days'", "now()"],
      ]) {
        await query(
          pruning.databaseUrl,
          `insert into sessions (id, user_id, create_time, last_refresh_time, expire_time, max_expire_time, revoke_time)
           values ($1, $2, now() - interval '40 days', now() - interval '31 days', ${end}, now() + interval '50 days', ${revoke})`,
          [id, user],
        );
      }
      const left = async () =>
        (
          await query<{ id: string }>(pruning.databaseUrl, "select id from sessions where id = any($1::uuid[])", [
            [ended, recent, revoked],
          ])
        ).map((r) => r.id);
      const started = Date.now();
      while ((await left()).includes(ended) && Date.now() - started < 10_000)
        await new Promise((r) => setTimeout(r, 100));
      expect((await left()).sort()).toEqual([recent, revoked].sort());
    } finally {
      await pruning.close();
    }
  });
});
