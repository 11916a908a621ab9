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

/** The fields of a user the cache keeps (instants in epoch ms; null for a time that is not set). */
interface Fields {
  email: string;
  displayName: string;
  role: string;
  state: string;
  labels: Record<string, string>;
  version: number;
  createMs: number;
  updateMs: number;
  deleteMs: number | null;
  tokensValidAfterMs: number | null;
}

const fieldsOf = (r: UserRow): Fields => ({
  ...r,
  createMs: r.createTime.getTime(),
  updateMs: r.updateTime.getTime(),
  deleteMs: r.deleteTime?.getTime() ?? null,
  tokensValidAfterMs: r.tokensValidAfter?.getTime() ?? null,
});

const fieldsOfSnapshot = (s: UserSnapshot): Fields => ({
  ...s,
  createMs: Date.parse(s.createTime),
  updateMs: Date.parse(s.updateTime),
  deleteMs: s.deleteTime ? Date.parse(s.deleteTime) : null,
  tokensValidAfterMs: s.tokensValidAfter ? Date.parse(s.tokensValidAfter) : null,
});

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

const fieldsOfWarmRow = (r: WarmRow): Fields => ({
  ...r,
  displayName: r.display_name,
  createMs: r.create_time,
  updateMs: r.update_time,
  deleteMs: r.delete_time,
  tokensValidAfterMs: r.tokens_valid_after,
});

const statusOfRow = (r: UserRow | null): UserStatus | null =>
  r ? { role: r.role, state: r.state, tokensValidAfterMs: r.tokensValidAfter?.getTime() ?? 0 } : null;

const ROLES: readonly StoredRole[] = ["user", "admin"];
const STATES: readonly StoredState[] = ["active", "suspended", "deleted"];
/** Slot kinds. */
const FREE = 0;
const ABSENT = 1; // the database said there is no such user (kept, so unknown ids in tokens cost no query)
const PRESENT = 2;

/**
 * The entries, one slot each, in columns rather than one object per user (docs/adr/0007): numbers in typed
 * arrays, and the strings of a user packed into one (`email \0 displayName \0 labels-as-JSON`; PostgreSQL
 * text cannot hold a NUL). A user then costs ~200 bytes against ~370 as an object with its own strings,
 * labels object and boxed numbers: 17 MB less at 100,000 users, and far fewer objects for the GC to mark.
 * The columns grow by doubling up to `max` slots.
 */
class Columns {
  /** Slot → id (undefined when free). */
  ids: (string | undefined)[] = [];
  text: string[] = [];
  kind: Uint8Array;
  used: Uint8Array;
  role: Uint8Array;
  state: Uint8Array;
  version: Int32Array;
  /** Per slot: create, update, delete (NaN: none), tokens-valid-after (0: none), in epoch ms. */
  times: Float64Array;
  /** Slots handed out so far (free ones below this are in `free`). */
  count = 0;
  free: number[] = [];

  private capacity: number;
  private readonly max: number;

  constructor(capacity: number, max: number) {
    this.capacity = capacity;
    this.max = max;
    this.kind = new Uint8Array(capacity);
    this.used = new Uint8Array(capacity);
    this.role = new Uint8Array(capacity);
    this.state = new Uint8Array(capacity);
    this.version = new Int32Array(capacity);
    this.times = new Float64Array(4 * capacity);
  }

  /** A free slot (the caller keeps the total under `max`). */
  alloc(id: string): number {
    const reused = this.free.pop();
    const slot = reused ?? this.count++;
    if (slot >= this.capacity) this.grow();
    this.ids[slot] = id;
    return slot;
  }

  release(slot: number): void {
    this.ids[slot] = undefined;
    this.text[slot] = "";
    this.kind[slot] = FREE;
    this.used[slot] = 0;
    this.free.push(slot);
  }

  /** Stores a user (or that there is none) in a slot; false when a value does not fit (then not kept). */
  write(slot: number, f: Fields | null): boolean {
    if (!f) {
      this.kind[slot] = ABSENT;
      this.text[slot] = "";
      return true;
    }
    const role = ROLES.indexOf(f.role as StoredRole);
    const state = STATES.indexOf(f.state as StoredState);
    if (role < 0 || state < 0 || !Number.isInteger(f.version) || f.version > 0x7fffffff) return false;
    const labels = Object.keys(f.labels).length === 0 ? "" : JSON.stringify(f.labels);
    // join makes one flat string (concatenation would keep a tree of the three parts).
    this.text[slot] = [f.email, f.displayName, labels].join("\0");
    this.kind[slot] = PRESENT;
    this.role[slot] = role;
    this.state[slot] = state;
    this.version[slot] = f.version;
    const t = 4 * slot;
    this.times[t] = f.createMs;
    this.times[t + 1] = f.updateMs;
    this.times[t + 2] = f.deleteMs ?? Number.NaN;
    this.times[t + 3] = f.tokensValidAfterMs ?? 0;
    return true;
  }

  /** A fresh row of a present slot. */
  row(slot: number): UserRow {
    const text = this.text[slot];
    const a = text.indexOf("\0");
    const b = text.indexOf("\0", a + 1);
    const labels = text.slice(b + 1);
    const t = 4 * slot;
    const deleteMs = this.times[t + 2];
    const validAfterMs = this.times[t + 3];
    return {
      id: this.ids[slot],
      email: text.slice(0, a),
      displayName: text.slice(a + 1, b),
      role: ROLES[this.role[slot]],
      state: STATES[this.state[slot]],
      labels: labels === "" ? {} : JSON.parse(labels),
      version: this.version[slot],
      createTime: new Date(this.times[t]),
      updateTime: new Date(this.times[t + 1]),
      deleteTime: Number.isNaN(deleteMs) ? null : new Date(deleteMs),
      tokensValidAfter: validAfterMs === 0 ? null : new Date(validAfterMs),
    } as UserRow;
  }

  status(slot: number): UserStatus | null {
    if (this.kind[slot] !== PRESENT) return null;
    return {
      role: ROLES[this.role[slot]],
      state: STATES[this.state[slot]],
      tokensValidAfterMs: this.times[4 * slot + 3],
    };
  }

  private grow(): void {
    const capacity = Math.min(this.max, 2 * this.capacity);
    const grown = <T extends Uint8Array | Int32Array | Float64Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.kind = grown(this.kind, capacity);
    this.used = grown(this.used, capacity);
    this.role = grown(this.role, capacity);
    this.state = grown(this.state, capacity);
    this.version = grown(this.version, capacity);
    this.times = grown(this.times, 4 * capacity);
    this.capacity = capacity;
  }
}

/** Builds the cache. Subscribe `apply` to the change feed. */
export function createUserCache(deps: UserCacheDeps) {
  const slots = new Map<string, number>();
  const columns = new Columns(Math.min(deps.max, 1024), deps.max);
  // Bumped by every applied change and every forget: a load that saw a bump meanwhile is not kept.
  let epoch = 0;
  // While warming: the users changed since warming began (their warmed rows may be stale; skipped).
  let changedWhileWarming: Set<string> | undefined;

  /** The slot of a cached id, marked as read (a hit only sets a flag: nothing moves in the map). */
  function cached(id: string): number | undefined {
    const slot = slots.get(id);
    if (slot !== undefined) columns.used[slot] = 1;
    return slot;
  }

  // The eviction clock: a hand over the slots. A slot read since the hand last passed is spared once; the
  // first unread one goes.
  let hand = 0;
  function evictOne(): void {
    for (let steps = 0; steps <= 2 * columns.count; steps++) {
      hand = hand + 1 < columns.count ? hand + 1 : 0;
      const id = columns.ids[hand];
      if (id === undefined) continue;
      if (columns.used[hand]) columns.used[hand] = 0;
      else {
        slots.delete(id);
        columns.release(hand);
        return;
      }
    }
  }

  function drop(id: string): void {
    const slot = slots.get(id);
    if (slot === undefined) return;
    slots.delete(id);
    columns.release(slot);
  }

  /** Keeps a user (or that there is none) under its id, evicting another when full. */
  function keep(id: string, f: Fields | null): void {
    let slot = slots.get(id);
    if (slot === undefined) {
      if (slots.size >= deps.max) evictOne();
      slot = columns.alloc(id);
      slots.set(id, slot);
    }
    if (!columns.write(slot, f)) drop(id);
  }

  async function load(id: string): Promise<UserRow | null> {
    const started = epoch;
    const row = await deps.load(id);
    if (epoch === started && deps.max > 0 && deps.isCurrent()) keep(id, row ? fieldsOf(row) : null);
    return row;
  }

  function changed(id: string): void {
    epoch++;
    changedWhileWarming?.add(id);
  }

  return {
    /** The user as committed (deleted ones included), or null when there is none. */
    async get(id: string): Promise<UserRow | null> {
      if (!deps.isCurrent()) return deps.load(id);
      const slot = cached(id);
      if (slot === undefined) return load(id);
      return columns.kind[slot] === PRESENT ? columns.row(slot) : null;
    },

    /** What the auth check needs of a user, or null when there is none. */
    async status(id: string): Promise<UserStatus | null> {
      const slot = cached(id);
      return slot !== undefined ? columns.status(slot) : statusOfRow(await load(id));
    },

    /** Applies committed changes, in commit order (the change feed's listener). */
    apply(events: readonly ChangeEvent[]): void {
      for (const e of events) {
        changed(e.userId);
        const slot = slots.get(e.userId);
        if (slot === undefined) continue;
        if (columns.kind[slot] === PRESENT && columns.version[slot] >= e.snapshot.version) continue;
        if (!columns.write(slot, fieldsOfSnapshot(e.snapshot))) drop(e.userId);
      }
    },

    /** Forgets a user after a write through this replica (the next read loads the committed row). */
    forget(id: string): void {
      changed(id);
      drop(id);
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
        while (slots.size < deps.max && deps.isCurrent()) {
          const res = await pool.query<WarmRow>({
            name: "warm-users",
            text: warmSql,
            values: [batch, after ?? "00000000-0000-0000-0000-000000000000"],
          });
          if (!deps.isCurrent()) break;
          for (const r of res.rows) {
            if (slots.size >= deps.max) break;
            if (slots.has(r.id) || changedWhileWarming.has(r.id)) continue;
            keep(r.id, fieldsOfWarmRow(r));
            if (slots.has(r.id)) loaded++;
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
    size: () => slots.size,
  };
}

/** The cache. */
export type UserCache = ReturnType<typeof createUserCache>;
