/**
 * Users by id in memory, kept exact by the change log, so GetUser and the auth check of every call cost no
 * database query (docs/adr/0007-user-cache.md).
 *
 * - Before the server listens, users are loaded in id order until the cache is full (`warm`); others
 *   load on first use. At most `max` entries; when full, a CLOCK sweep evicts an entry not read since the
 *   sweep last passed it (an approximation of least recently used).
 * - Every replica applies every committed change from its change feed (milliseconds after the commit;
 *   the feed also polls every second). A change is applied only over an older version, so a row loaded
 *   fresh from the database is never replaced by an event the feed has not caught up past.
 * - A write through this replica forgets the user before the call answers, so the next read loads the
 *   committed row: a read after a write through the same replica always sees it.
 * - A load is not kept when a change was applied while it ran (it may have read the row before that change).
 * - While the feed is not current (its connection dropped, or it has not caught up since it came back),
 *   changes may be missing: `get` reads the database and keeps nothing. `status` (the auth check) keeps
 *   using entries, as the token check always did; they are exact again once the feed has caught up, because
 *   the catch-up brings every change since the last one applied.
 */
import type pg from "pg";
import type { ChangeEvent } from "../changes/change-feed.ts";
import type { UserSnapshot } from "../changes/change-log.ts";
import type { StoredRole, StoredState, UserRow } from "./user.entity.ts";
import type { UserRecord } from "./user.record.ts";

/** The auth-relevant facts of a user. */
export interface UserStatus {
  role: StoredRole;
  state: StoredState;
  tokensValidAfterMs: number;
}

/** What the cache needs from the rest of the service. */
export interface UserCacheDeps {
  /** Reads a user (deleted ones included) from the database; null when there is none. */
  load(id: string): Promise<UserRow | null>;
  /** True while the change feed is connected and has caught up. */
  isCurrent(): boolean;
  /** Entries kept at most; 0 turns caching off (every read goes to the database). */
  max: number;
}

/**
 * A cached user: a row with its instants as epoch milliseconds (a Date costs ~80 bytes more each; at
 * 100,000 users the difference is 15 MB of heap).
 */
interface Entry {
  id: string;
  email: string;
  displayName: string;
  role: StoredRole;
  state: StoredState;
  labels: Record<string, string>;
  version: number;
  createMs: number;
  updateMs: number;
  deleteMs: number | null;
  tokensValidAfterMs: number;
  /** Read since the eviction clock last passed (the entry then gets a second chance). */
  used: boolean;
}

const noLabels: Record<string, string> = Object.freeze({}) as Record<string, string>;
const roles: Record<string, StoredRole> = { user: "user", admin: "admin" };
const states: Record<string, StoredState> = { active: "active", suspended: "suspended", deleted: "deleted" };

/** An entry from its fields (instants in epoch ms; null for a time that is not set). */
function entry(
  f: Pick<UserRow, "id" | "email" | "displayName" | "labels" | "version"> & { role: string; state: string },
  createMs: number,
  updateMs: number,
  deleteMs: number | null,
  tokensValidAfterMs: number | null,
): Entry {
  return {
    id: f.id,
    email: f.email,
    displayName: f.displayName,
    // The same string objects for every entry (the database hands out a new one per row).
    role: roles[f.role] ?? (f.role as StoredRole),
    state: states[f.state] ?? (f.state as StoredState),
    labels: Object.keys(f.labels).length === 0 ? noLabels : f.labels,
    version: f.version,
    createMs,
    updateMs,
    deleteMs,
    tokensValidAfterMs: tokensValidAfterMs ?? 0,
    used: false,
  };
}

const entryOf = (r: UserRow): Entry =>
  entry(
    r,
    r.createTime.getTime(),
    r.updateTime.getTime(),
    r.deleteTime?.getTime() ?? null,
    r.tokensValidAfter?.getTime() ?? null,
  );

const entryOfSnapshot = (s: UserSnapshot): Entry =>
  entry(
    s,
    Date.parse(s.createTime),
    Date.parse(s.updateTime),
    s.deleteTime ? Date.parse(s.deleteTime) : null,
    s.tokensValidAfter ? Date.parse(s.tokensValidAfter) : null,
  );

/** A fresh row of an entry. Its `labels` object is the cache's own: read it, do not change it. */
function rowOf(e: Entry): UserRow {
  return {
    id: e.id,
    email: e.email,
    displayName: e.displayName,
    role: e.role,
    state: e.state,
    labels: e.labels,
    version: e.version,
    createTime: new Date(e.createMs),
    updateTime: new Date(e.updateMs),
    deleteTime: e.deleteMs === null ? null : new Date(e.deleteMs),
    tokensValidAfter: e.tokensValidAfterMs === 0 ? null : new Date(e.tokensValidAfterMs),
  } as UserRow;
}

/**
 * Warming reads instants as epoch ms (floored, as a Date parsed from the timestamp would be), so 100,000
 * users make no Date objects: less garbage at start-up, when the process sets its first peak.
 */
const ms = (column: string) => `floor(extract(epoch from ${column}) * 1000)::float8 as ${column}`;
const warmSql = `select id, email, display_name, role, state, labels, version, ${ms("create_time")},
  ${ms("update_time")}, ${ms("delete_time")}, ${ms("tokens_valid_after")}
  from users where id > $2 order by id limit $1`;

type WarmRow = Omit<UserRecord, "create_time" | "update_time" | "delete_time" | "tokens_valid_after"> & {
  create_time: number;
  update_time: number;
  delete_time: number | null;
  tokens_valid_after: number | null;
};

const warmEntry = (r: WarmRow): Entry =>
  entry({ ...r, displayName: r.display_name }, r.create_time, r.update_time, r.delete_time, r.tokens_valid_after);

const statusOf = (e: Entry | null): UserStatus | null =>
  e ? { role: e.role, state: e.state, tokensValidAfterMs: e.tokensValidAfterMs } : null;

/** Builds the cache. Subscribe `apply` to the change feed. */
export function createUserCache(deps: UserCacheDeps) {
  // null: the database said there is no such user (kept, so unknown ids in tokens cost no query either).
  const entries = new Map<string, Entry | null>();
  // Bumped by every applied change and every forget: a load that saw a bump meanwhile is not kept.
  let epoch = 0;
  // While warming: the users changed since warming began (their warmed rows may be stale; skipped).
  let changedWhileWarming: Set<string> | undefined;

  function cached(id: string): Entry | null | undefined {
    const hit = entries.get(id);
    if (hit !== undefined) {
      // A hit only marks the entry. (Moving it to the back, delete + set, leaves a deleted slot in the key's
      // hash chain each time: for a hot key such as a busy caller's, V8's Map then walks thousands of them
      // on every set, which measured ~40 µs per call.)
      if (hit) hit.used = true;
    }
    return hit;
  }

  // The eviction clock: one long-lived iterator over the map (in insertion order). An entry used since the
  // clock last passed is spared once; the first unused one goes. (`entries.keys().next()` afresh would
  // scan from the start of the table over every slot deleted since the last rehash.)
  let clock = entries.keys();
  function evictOne(): void {
    for (let steps = 0; steps <= 2 * entries.size; steps++) {
      let next = clock.next();
      if (next.done) {
        clock = entries.keys();
        next = clock.next();
        if (next.done) return;
      }
      const e = entries.get(next.value);
      if (e?.used) e.used = false;
      else {
        entries.delete(next.value);
        return;
      }
    }
  }

  function keep(id: string, entry: Entry | null): void {
    if (entries.size >= deps.max && !entries.has(id)) evictOne();
    entries.set(id, entry);
  }

  async function load(id: string): Promise<Entry | null> {
    const started = epoch;
    const row = await deps.load(id);
    const entry = row ? entryOf(row) : null;
    if (epoch === started && deps.max > 0 && deps.isCurrent()) keep(id, entry);
    return entry;
  }

  function changed(id: string): void {
    epoch++;
    changedWhileWarming?.add(id);
  }

  return {
    /** The user as committed (deleted ones included), or null when there is none. */
    async get(id: string): Promise<UserRow | null> {
      if (!deps.isCurrent()) return deps.load(id);
      const e = cached(id) ?? (await load(id));
      return e ? rowOf(e) : null;
    },

    /** What the auth check needs of a user, or null when there is none. */
    async status(id: string): Promise<UserStatus | null> {
      const hit = cached(id);
      return statusOf(hit !== undefined ? hit : await load(id));
    },

    /** Applies committed changes, in commit order (the change feed's listener). */
    apply(events: readonly ChangeEvent[]): void {
      for (const e of events) {
        changed(e.userId);
        const current = entries.get(e.userId);
        if (current === undefined || (current !== null && current.version >= e.snapshot.version)) continue;
        entries.set(e.userId, entryOfSnapshot(e.snapshot));
      }
    },

    /** Forgets a user after a write through this replica (the next read loads the committed row). */
    forget(id: string): void {
      changed(id);
      entries.delete(id);
    },

    /**
     * Loads users in id order until the cache is full, in batches, yielding between them.
     * Rows of users changed while warming are left out (they load on first use). Resolves with the number
     * of users loaded; stops early (without failing) when the database or the feed is unavailable.
     */
    async warm(pool: pg.Pool, batch = 1000): Promise<number> {
      if (deps.max === 0 || changedWhileWarming) return 0;
      changedWhileWarming = new Set();
      let loaded = 0;
      let after: string | undefined;
      try {
        while (entries.size < deps.max && deps.isCurrent()) {
          const res = await pool.query<WarmRow>({
            name: "warm-users",
            text: warmSql,
            values: [batch, after ?? "00000000-0000-0000-0000-000000000000"],
          });
          if (!deps.isCurrent()) break;
          for (const r of res.rows) {
            if (entries.size >= deps.max) break;
            if (entries.has(r.id) || changedWhileWarming.has(r.id)) continue;
            entries.set(r.id, warmEntry(r));
            loaded++;
          }
          if (res.rows.length < batch) break;
          after = res.rows[res.rows.length - 1].id;
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch {
        // The database went away: the rest load on first use.
      } finally {
        changedWhileWarming = undefined;
      }
      return loaded;
    },

    /** Users held now (the `user_cache_entries` gauge). */
    size: () => entries.size,
  };
}

/** The cache. */
export type UserCache = ReturnType<typeof createUserCache>;
