/**
 * WatchUsers snapshots hold a pooled connection from their first page to their last, waiting for their reader
 * in between. At most half the pool is theirs (src/users/pg/connection-share.ts): stalled snapshots never
 * take the connections that writes and reads need, and a further snapshot waits for a place.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeUserSessionsSql } from "../../src/auth/session.repository.ts";
import { createPgUserStore } from "../../src/users/pg/pg-user-store.ts";
import { createTestDatabase } from "../helpers/database.ts";

let pool: pg.Pool;

beforeAll(async () => {
  const url = await createTestDatabase();
  pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 2000 });
});
afterAll(async () => {
  await pool?.end();
});

const settled = async (p: Promise<unknown>, ms: number) =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe("snapshots and the pool", () => {
  it("stalled snapshots take at most half the pool; writes go on; the next snapshot waits for a place", async () => {
    const users = createPgUserStore({ pool, revokeSessions: revokeUserSessionsSql });
    const created = await users.create({
      email: `share-${randomUUID()}@example.com`,
      displayName: "share",
      role: "user",
      labels: {},
      passwordHash: null,
    });
    // Two snapshots read their first page and stall (their readers never ask for more).
    const a = users.snapshot(null);
    const b = users.snapshot(null);
    expect((await a.next()).done).toBe(false);
    expect((await b.next()).done).toBe(false);
    // A third waits for a place rather than taking a third connection.
    const c = users.snapshot(null);
    const third = c.next();
    expect(await settled(third, 300)).toBe(false);
    // Writes and reads still get connections, several at once (the pool has 4; without the share the
    // snapshots could hold all of them and these would wait until the pool's timeout).
    const updates = await Promise.all(
      [1, 2, 3].map((n) => users.update(created.id, { displayName: `after ${n}` }, "")),
    );
    expect(updates.map((u) => u.version).sort()).toEqual([2, 3, 4]);
    expect((await users.findById(created.id))?.version).toBe(4);
    // One snapshot ends: the waiting one gets its place and its first page.
    await a.return(undefined);
    expect(await settled(third, 2000)).toBe(true);
    expect((await third).done).toBe(false);
    await b.return(undefined);
    await c.return(undefined);
  });
});
