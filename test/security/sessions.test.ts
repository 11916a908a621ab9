/**
 * Session security over the wire: refresh-token rotation; reuse of a rotated token (a stolen token replayed)
 * revokes the whole family, so the thief's and the victim's next refresh both fail, whoever replays first,
 * while the user's other sessions live on; concurrent use of one token lets exactly one through; Logout
 * ends the family, its access tokens included (on every replica within a second); ChangePassword kills every earlier access token and every other session, and the new
 * tokens work; suspended and deleted users can neither log in nor refresh.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
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
