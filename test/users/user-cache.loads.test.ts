/**
 * Reads that miss the user cache (src/users/user-cache.ts) on a real PostgreSQL store: concurrent reads of one
 * id share one query, each gets its own object, and a read after a local write never joins a load that began
 * before it.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeUserSessionsSql } from "../../src/auth/session.repository.ts";
import { createPgUserStore } from "../../src/users/pg/pg-user-store.ts";
import { withUserCache } from "../../src/users/user-cache.ts";
import type { UserStore } from "../../src/users/user-store.ts";
import { createTestDatabase, query } from "../helpers/database.ts";

let pool: pg.Pool;
let url: string;

beforeAll(async () => {
  url = await createTestDatabase();
  pool = new pg.Pool({ connectionString: url, max: 4 });
});
afterAll(async () => {
  await pool?.end();
});

/** The store, counting the reads that reach PostgreSQL. */
function countingStore(): { store: UserStore; reads: () => number } {
  const pgStore = createPgUserStore({ pool, revokeSessions: revokeUserSessionsSql });
  let reads = 0;
  const store: UserStore = {
    ...pgStore,
    findById: (id) => {
      reads++;
      return pgStore.findById(id);
    },
  };
  return { store, reads: () => reads };
}

// The feed stays current and brings nothing (no other writer here): what is tested is the cache's own path.
const feed = { isCurrent: () => true, subscribe: () => () => {}, poke: async () => {} };

async function insertUser(name: string): Promise<string> {
  const id = randomUUID();
  await query(
    url,
    `insert into users (id, email, display_name, role, state, labels, version, create_time, update_time)
     values ($1, $2, $3, 'user', 'active', '{"team": "a"}', 1, now(), now())`,
    [id, `${name}-${id}@example.com`, name],
  );
  return id;
}

describe("reads that miss the user cache", () => {
  it("concurrent reads of one id send one query, and each gets its own copy", async () => {
    const { store, reads } = countingStore();
    const cache = withUserCache(store, { feed, max: 100, warmBatch: async () => [] });
    const id = await insertUser("shared");
    const users = await Promise.all(Array.from({ length: 20 }, () => cache.findById(id)));
    expect(reads()).toBe(1);
    for (const u of users) expect(u).toEqual(users[0]);
    expect(new Set(users).size).toBe(20);
    const [first, second] = users;
    if (!second) throw new Error("no user");
    second.labels.team = "changed by one caller";
    expect(first?.labels.team).toBe("a");
    // And now from memory.
    expect(await cache.status(id)).toEqual({
      role: "user",
      state: "active",
      tokensValidAfterMs: 0,
      passwordChangeRequired: false,
    });
    expect(reads()).toBe(1);
  });

  it("a read after a local write does not join a load that began before the write", async () => {
    const { store, reads } = countingStore();
    const cache = withUserCache(store, { feed, max: 100, warmBatch: async () => [] });
    const id = await insertUser("before");
    const early = cache.findById(id); // begins loading the row as it is now
    const written = await cache.update(id, { displayName: "after" }, "");
    const late = await cache.findById(id);
    expect(late?.displayName).toBe("after");
    expect(late?.version).toBe(written.version);
    expect((await early)?.id).toBe(id);
    // The late read came from memory: the write kept the user as it wrote it (the early load, which began
    // before the write, was not kept over it).
    expect(reads()).toBe(1);
    expect((await cache.findById(id))?.displayName).toBe("after");
  });
});
