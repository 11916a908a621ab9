/**
 * A write that starts from a cached copy of the user (UserStore.update/delete's `seen`, passed by
 * src/users/user-cache.ts) on a real PostgreSQL store: a stale copy never causes a lost update, a wrong
 * version or a wrong error; the row is read and the write retried.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeUserSessionsSql } from "../../src/auth/session.repository.ts";
import { createPgUserStore } from "../../src/users/pg/pg-user-store.ts";
import type { User } from "../../src/users/user.ts";
import { createTestDatabase, query } from "../helpers/database.ts";

let url: string;
let pool: pg.Pool;

beforeAll(async () => {
  url = await createTestDatabase();
  pool = new pg.Pool({ connectionString: url, max: 4 });
});
afterAll(async () => {
  await pool?.end();
});

const store = () => createPgUserStore({ pool, revokeSessions: revokeUserSessionsSql });

async function insertUser(): Promise<string> {
  const id = randomUUID();
  await query(
    url,
    `insert into users (id, email, display_name, role, state, labels, version, create_time, update_time)
     values ($1, $2, 'first', 'user', 'active', '{"team": "a"}', 1, now(), now())`,
    [id, `seen-${id}@example.com`],
  );
  return id;
}

const changes = async (id: string) =>
  (
    await query<{ version: number }>(
      url,
      "select (snapshot->>'version')::int as version from user_changes where user_id = $1 order by id",
      [id],
    )
  ).map((r) => r.version);

describe("a write that starts from a cached copy", () => {
  it("writes from a current copy, and a stale copy costs a retry, not a lost update", async () => {
    const users = store();
    const id = await insertUser();
    const v1 = (await users.findById(id)) as User;
    const v2 = await users.update(id, { displayName: "second" }, "", v1);
    expect(v2.version).toBe(2);
    // v1 is stale now: the blind write must land on version 2, keeping "second"'s other fields.
    const v3 = await users.update(id, { labels: { team: "b" } }, "", v1);
    expect(v3).toMatchObject({ version: 3, displayName: "second", labels: { team: "b" } });
    expect(await users.findById(id)).toMatchObject({ version: 3, displayName: "second", labels: { team: "b" } });
    expect(await changes(id)).toEqual([2, 3]);
  });

  it("a stale copy never decides an error: the current etag wins over an older copy", async () => {
    const users = store();
    const id = await insertUser();
    const v1 = (await users.findById(id)) as User;
    const v2 = await users.update(id, { displayName: "second" }, "");
    // The caller read v2 (its etag), the cache still holds v1.
    const v3 = await users.update(id, { displayName: "third" }, 'W/"2"', v1);
    expect(v3.version).toBe(3);
    // A copy that says deleted while the row is live is not believed either.
    const deletedCopy: User = { ...v2, version: 3, state: "deleted", deleteTime: new Date() };
    const v4 = await users.update(id, { displayName: "fourth" }, "", deletedCopy);
    expect(v4).toMatchObject({ version: 4, state: "active", displayName: "fourth" });
    // And a stale copy cannot hide a real mismatch.
    await expect(users.delete(id, 'W/"3"', v3)).rejects.toMatchObject({ reason: "ETAG_MISMATCH" });
    expect(await changes(id)).toEqual([2, 3, 4]);
  });
});
