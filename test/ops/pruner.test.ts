/**
 * The pruner (src/ops/pruner.ts, src/ops/prune-statements.ts) as the running service does it: expired
 * refresh tokens, idempotency keys older than a day, login failures with no attempt for an hour and no
 * lock, and the change log past its retention are deleted, in batches (a backlog larger than one batch
 * goes in one round), by one replica at a time; live rows stay; /metrics counts the rows per table.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PRUNE_BATCH } from "../../src/ops/pruner.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, sampleKey } from "./prometheus-text.ts";

let server: TestServer;
let adminId: string;

beforeAll(async () => {
  server = await startTestServer({ PRUNE_INTERVAL: "300ms" });
  [{ id: adminId }] = await query<{ id: string }>(server.databaseUrl, "select id from users where role = 'admin'");
});
afterAll(() => server?.close());

const sql = <T extends pg.QueryResultRow = Record<string, unknown>>(text: string, params: unknown[] = []) =>
  query<T>(server.databaseUrl, text, params);

async function pruned(): Promise<Record<string, number>> {
  const samples = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
  const tables = ["refresh_tokens", "idempotency_keys", "login_failures", "user_changes"];
  return Object.fromEntries(
    tables.map((table) => [table, samples.get(sampleKey("pruned_rows_total", { table })) ?? NaN]),
  );
}

async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Inserts refresh tokens of the admin expiring at `expire` (an SQL expression). */
async function tokens(n: number, expire: string): Promise<void> {
  await sql(
    `insert into refresh_tokens (id, user_id, family_id, token_hash, create_time, expire_time)
     select gen_random_uuid(), $1, gen_random_uuid(), decode(md5(random()::text || i), 'hex'), now() - interval '40 days', ${expire}
     from generate_series(1, $2) i`,
    [adminId, n],
  );
}

describe("the pruner", () => {
  it("shows every table's counter at zero before anything is pruned", async () => {
    expect(await pruned()).toEqual({ refresh_tokens: 0, idempotency_keys: 0, login_failures: 0, user_changes: 0 });
  });

  it("deletes expired rows of every table, past one batch, keeps live ones, and counts them on /metrics", async () => {
    const before = await pruned();
    // Refresh tokens: expired two days ago (pruned), an hour ago (kept for the day's margin), live.
    await tokens(PRUNE_BATCH + 5, "now() - interval '2 days'");
    await tokens(3, "now() - interval '1 hour'");
    await tokens(4, "now() + interval '29 days'");
    // Idempotency keys: 25 hours old (pruned), 1 hour old (kept).
    for (const age of ["25 hours", "25 hours", "1 hour"]) {
      await sql(
        `insert into idempotency_keys (caller_id, request_id, user_id, create_time) values ($1, $2, $3, now() - interval '${age}')`,
        [adminId, randomUUID(), adminId],
      );
    }
    // Login failures: idle for 2 hours (pruned, 2.5 batches of them), recent, and a lock still in force.
    await sql(
      `insert into login_failures (email_key, attempts, update_time)
       select 'old-' || i || '@example.com', 3, now() - interval '2 hours' from generate_series(1, $1) i`,
      [Math.floor(PRUNE_BATCH * 2.5)],
    );
    await sql(
      "insert into login_failures (email_key, attempts, update_time) values ('recent@example.com', 2, now() - interval '10 minutes')",
    );
    await sql(
      "insert into login_failures (email_key, attempts, locked_until, update_time) values ('locked@example.com', 5, now() + interval '1 hour', now() - interval '2 hours')",
    );
    // The change log: the admin's creation, moved past AUDIT_RETENTION (90 days; within it only WatchUsers'
    // horizon moves: test/users/history.test.ts).
    // Numbered by the sequencer after its commit (the feed's poke or its 1 s poll): wait for it before aging
    // the row, or the expected horizon below would be read as null.
    let seq: string | null = null;
    await until(async () => {
      [{ seq }] = await sql<{ seq: string | null }>("select max(seq) as seq from user_changes");
      return seq !== null;
    });
    await sql("update user_changes set change_time = now() - interval '91 days'");

    await until(async () => {
      const [{ n }] = await sql<{ n: string }>(
        `select (select count(*) from refresh_tokens where expire_time < now() - interval '1 day')
              + (select count(*) from idempotency_keys where create_time < now() - interval '1 day')
              + (select count(*) from login_failures where email_key like 'old-%')
              + (select count(*) from user_changes) as n`,
      );
      return Number(n) === 0;
    });
    expect(Number((await sql<{ n: string }>("select count(*) as n from refresh_tokens"))[0].n)).toBe(7);
    expect(Number((await sql<{ n: string }>("select count(*) as n from idempotency_keys"))[0].n)).toBe(1);
    expect(
      (await sql<{ email_key: string }>("select email_key from login_failures order by 1")).map((r) => r.email_key),
    ).toEqual(["locked@example.com", "recent@example.com"]);
    // Resume tokens at or below the pruned change are now recognisably expired.
    expect((await sql<{ pruned_seq: string }>("select pruned_seq from user_changes_horizon"))[0].pruned_seq).toBe(seq);

    await until(async () => (await pruned()).login_failures - before.login_failures === Math.floor(PRUNE_BATCH * 2.5));
    const after = await pruned();
    expect({
      refresh_tokens: after.refresh_tokens - before.refresh_tokens,
      idempotency_keys: after.idempotency_keys - before.idempotency_keys,
      login_failures: after.login_failures - before.login_failures,
      user_changes: after.user_changes - before.user_changes,
    }).toEqual({
      refresh_tokens: PRUNE_BATCH + 5,
      idempotency_keys: 2,
      login_failures: PRUNE_BATCH * 2.5,
      user_changes: 1,
    });
  });

  it("leaves the round to the replica holding the pruning lock", async () => {
    const other = new pg.Client({ connectionString: server.databaseUrl });
    await other.connect();
    try {
      await other.query("select pg_advisory_lock($1)", [0x70727565]);
      const before = await pruned();
      await tokens(2, "now() - interval '3 days'");
      await new Promise((r) => setTimeout(r, 1500));
      expect((await sql("select 1 from refresh_tokens where expire_time < now() - interval '1 day'")).length).toBe(2);
      expect(await pruned()).toEqual(before);
      await other.query("select pg_advisory_unlock($1)", [0x70727565]);
      await until(
        async () =>
          (await sql("select 1 from refresh_tokens where expire_time < now() - interval '1 day'")).length === 0,
      );
      await until(async () => (await pruned()).refresh_tokens === before.refresh_tokens + 2);
    } finally {
      await other.end();
    }
  });
});
