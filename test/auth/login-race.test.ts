/**
 * A Login that verified the old password while a password change committed starts no session. The change is
 * held open in a transaction of the test's own (it locks the user's row, as every user write does): the Login
 * reads the old hash, verifies it, then waits for the row; when the change commits with tokens revoked, the
 * Login must answer INVALID_CREDENTIALS and leave no session behind. Without the check, it would start a
 * session after the change's revocation and keep it.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashPassword } from "../../src/passwords/passwords.ts";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let member: Member;

beforeAll(async () => {
  server = await startTestServer();
  member = await createMember(server.url, await adminToken(server.url), { prefix: "race" });
});
afterAll(async () => {
  await server?.close();
});

const liveSessions = async (userId: string) =>
  (
    await query<{ n: number }>(
      server.databaseUrl,
      "select count(*)::int as n from sessions where user_id = $1 and revoke_time is null",
      [userId],
    )
  )[0].n;

/** Waits until some backend of the test database waits for a lock (the Login, on the user's row). */
async function someoneWaitsForALock(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const rows = await query(
      server.databaseUrl,
      "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("no Login waited for the user's row");
}

describe("a Login racing a password change", () => {
  it("that verified the old password while the change committed gets INVALID_CREDENTIALS and no session", async () => {
    const before = await liveSessions(member.user.id);
    const change = new pg.Client({ connectionString: server.databaseUrl });
    await change.connect();
    try {
      // What a ChangePassword, ResetPassword or SetPassword writes: a new hash, and every earlier token dead.
      await change.query("begin");
      await change.query(
        `update users set password_hash = $2, tokens_valid_after = now(), version = version + 1 where id = $1`,
        [member.user.id, await hashPassword("a-brand-new-password-9", { wait: true })],
      );
      await change.query("update sessions set revoke_time = now() where user_id = $1 and revoke_time is null", [
        member.user.id,
      ]);
      const login = failure(clients(server.url, "grpc").auth.login({ email: member.email, password: member.password }));
      await someoneWaitsForALock();
      await change.query("commit");
      const f = await login;
      expect(f.reason).toBe("INVALID_CREDENTIALS");
      expect(await liveSessions(member.user.id)).toBe(0);
      expect(before).toBeGreaterThan(0);
    } finally {
      await change.end();
    }
  });

  it("a Login that is not racing anything still works, and one that waited for an unrelated write too", async () => {
    const res = await clients(server.url, "grpc").auth.login({
      email: member.email,
      password: "a-brand-new-password-9",
    });
    expect(res.tokens?.accessToken).toBeTruthy();
    // A write that does not change the password (a new display name) moves no tokens-valid-after instant.
    const write = new pg.Client({ connectionString: server.databaseUrl });
    await write.connect();
    try {
      await write.query("begin");
      await write.query("update users set display_name = 'Renamed', version = version + 1 where id = $1", [
        member.user.id,
      ]);
      const login = clients(server.url, "grpc").auth.login({ email: member.email, password: "a-brand-new-password-9" });
      await someoneWaitsForALock();
      await write.query("commit");
      expect((await login).tokens?.accessToken).toBeTruthy();
    } finally {
      await write.end();
    }
  });
});
