/**
 * Users by id in memory, kept exact by the change log, so GetUser and the auth check of every call cost no
 * database query (docs/adr/0007-user-cache.md). `withUserCache(store, ...)` decorates a UserStore: findById
 * and status are served from memory, writes forget the user, everything else goes to the store.
 *
 * - Before the server listens, users are loaded in id order until the cache is full (`warm`); others
 *   load on first use. At most `max` entries; when full, a CLOCK sweep evicts an entry not read since the
 *   sweep last passed it (an approximation of least recently used).
 * - Every replica applies every committed change from its change feed (milliseconds after the commit;
 *   the feed also polls every second). A change is applied only over an older version, so a row loaded
 *   fresh from the database is never replaced by an event the feed has not caught up past.
 * - A write through this replica keeps the user as it wrote it (the committed row) before the call answers,
 *   so a read after a write through the same replica always sees it; the next write of that user starts
 *   from this copy instead of reading the row (its version check makes a stale copy a retry).
 * - A load is not kept when a change was applied while it ran (it may have read the row before that change).
 * - Concurrent reads of an id that is not cached share one load, unless a change was applied or a local
 *   write forgot a user since it began (docs/adr/0017).
 * - While the feed is not current (its connection dropped, or it has not caught up since it came back),
 *   changes may be missing: `findById` reads the store and keeps nothing. `status` (the auth check) keeps
 *   using entries, as the token check always did; they are exact again once the feed has caught up, because
 *   the catch-up brings every change since the last one applied.
 */
import type { ChangeEvent, ChangeListener } from "../changes/change-feed.ts";
import { userFromSnapshot } from "./user.snapshot.ts";
import { statusOf, type User, type UserStatus } from "./user.ts";
import { Columns, type CompactUser, compactOf } from "./user-cache.columns.ts";
import type { UserStore } from "./user-store.ts";

/** What the cache needs of the change feed. */
export interface CacheFeed {
  /** True while the feed is connected and has caught up. */
  isCurrent(): boolean;
  /** Hands every committed change to `listener`, in commit order. */
  subscribe(listener: ChangeListener): () => void;
  /** Reads the log now rather than at the next notification (after a local write). */
  poke(): Promise<void>;
}

/** How the cache is built. */
export interface UserCacheOptions {
  feed: CacheFeed;
  /** Entries kept at most; 0 turns caching off (every read goes to the store). */
  max: number;
  /** Up to `limit` users after `afterId` in id order (the warm-up's read). */
  warmBatch(afterId: string, limit: number): Promise<CompactUser[]>;
}

/** A store with its users in memory. */
export interface CachedUserStore extends UserStore {
  /**
   * Loads users in id order until the cache is full, in batches, yielding between them. Users changed while
   * warming are left out (they load on first use). Resolves with the number of users loaded; stops early
   * (without failing) when the database or the feed is unavailable.
   */
  warm(batch?: number): Promise<number>;
  /** Users held now (the `user_cache_entries` gauge). */
  size(): number;
}

/** Decorates `store` with the cache, subscribed to the feed from now on. */
export function withUserCache(store: UserStore, opts: UserCacheOptions): CachedUserStore {
  const { feed, max } = opts;
  const columns = new Columns(Math.min(max, 1024), max);
  // Bumped by every applied change and every forget: a load that saw a bump meanwhile is not kept.
  let epoch = 0;
  // While warming: the users changed since warming began (their warmed rows may be stale; skipped).
  let changedWhileWarming: Set<string> | undefined;
  // Loads under way, by id: a read of the same id joins one instead of sending its own query, as long as
  // nothing was applied or forgotten since it began (then it reads exactly what a query sent now would).
  const loading = new Map<string, { epoch: number; user: Promise<User | null> }>();

  /** The slot of a cached id, marked as read (a hit only sets a bit: nothing moves). -1 when not cached. */
  function cached(id: string): number {
    const slot = columns.find(id);
    if (slot >= 0) columns.markUsed(slot);
    return slot;
  }

  // The eviction clock: a hand over the slots. A slot read since the hand last passed is spared once; the
  // first unread one goes.
  let hand = 0;
  function evictOne(): void {
    for (let steps = 0; steps <= 2 * columns.count; steps++) {
      hand = hand + 1 < columns.count ? hand + 1 : 0;
      if (columns.isFree(hand) || columns.takeUsed(hand)) continue;
      columns.release(hand);
      return;
    }
  }

  function drop(id: string): void {
    const slot = columns.find(id);
    if (slot >= 0) columns.release(slot);
  }

  /** Keeps a user (or that there is none) under its id, evicting another when full. */
  function keep(id: string, u: CompactUser | null): void {
    let slot = columns.find(id);
    if (slot < 0) {
      if (columns.size() >= max) evictOne();
      slot = columns.alloc(id);
      if (slot < 0) return; // not a canonical UUID: never cached
    }
    if (!columns.write(slot, u)) columns.release(slot);
  }

  function load(id: string): Promise<User | null> {
    const under = loading.get(id);
    if (under && under.epoch === epoch) return under.user.then(copyOf);
    const started = epoch;
    const done = () => {
      if (loading.get(id) === entry) loading.delete(id);
    };
    const entry = {
      epoch: started,
      user: store.findById(id).then((user) => {
        done();
        if (epoch === started && max > 0 && feed.isCurrent()) keep(id, user ? compactOf(user) : null);
        return user;
      }),
    };
    entry.user.catch(done);
    loading.set(id, entry);
    return entry.user;
  }

  function changed(id: string): void {
    epoch++;
    changedWhileWarming?.add(id);
  }

  /** Applies committed changes, in commit order (the change feed's listener). */
  function apply(events: readonly ChangeEvent[]): void {
    for (const e of events) {
      changed(e.userId);
      const slot = columns.find(e.userId);
      if (slot < 0) continue;
      if (columns.isPresent(slot) && columns.version(slot) >= e.snapshot.version) continue;
      if (!columns.write(slot, compactOf(userFromSnapshot(e.snapshot)))) columns.release(slot);
    }
  }
  feed.subscribe(apply);

  /**
   * After a write through this replica: keep the user as written, which is the committed row (the next read
   * sees it), or forget it while the feed is not current. An older event arriving later is not applied over
   * it (versions only go up).
   */
  function written(user: User): User {
    changed(user.id);
    if (!(max > 0 && feed.isCurrent())) drop(user.id);
    else {
      // Two writes of one user may answer out of order: never go back to an older version.
      const slot = columns.find(user.id);
      if (slot < 0 || !columns.isPresent(slot) || columns.version(slot) < user.version) keep(user.id, compactOf(user));
    }
    void feed.poke();
    return user;
  }

  /** The cached copy of a user, for a write to start from (not marked as read); undefined when not held. */
  function seen(id: string): User | undefined {
    if (!feed.isCurrent()) return undefined;
    const slot = columns.find(id);
    return slot >= 0 && columns.isPresent(slot) ? columns.user(slot) : undefined;
  }

  return {
    /** The user as committed (deleted ones included), or null when there is none. */
    async findById(id: string): Promise<User | null> {
      if (!feed.isCurrent()) return store.findById(id);
      const slot = cached(id);
      if (slot < 0) return load(id);
      return columns.isPresent(slot) ? columns.user(slot) : null;
    },

    /** What the auth check needs of a user, or null when there is none. */
    async status(id: string): Promise<UserStatus | null> {
      const slot = cached(id);
      return slot >= 0 ? columns.status(slot) : statusOf(await load(id));
    },

    create: async (input, idempotency, actor) => written(await store.create(input, idempotency, actor)),
    // A `seen` given by the caller wins over the cached copy.
    update: async (id, patch, etag, given, actor) =>
      written(await store.update(id, patch, etag, given ?? seen(id), actor)),
    delete: async (id, etag, given, actor) => written(await store.delete(id, etag, given ?? seen(id), actor)),
    undelete: async (id, actor) => written(await store.undelete(id, actor)),
    setPassword: async (id, passwordHash, changeRequired, actor) =>
      written(await store.setPassword(id, passwordHash, changeRequired, actor)),
    verifyEmail: async (id, email, actor) => written(await store.verifyEmail(id, email, actor)),

    findByIds: (ids) => store.findByIds(ids),
    list: (query) => store.list(query),
    stream: (query, signal) => store.stream(query, signal),
    snapshot: (filter) => store.snapshot(filter),
    hasAdmin: () => store.hasAdmin(),
    importBatch: (users, actor) => store.importBatch(users, actor),
    lockStatus: (tx, id) => store.lockStatus(tx, id),
    findByEmailWithHash: (email) => store.findByEmailWithHash(email),
    findByIdWithHash: (id) => store.findByIdWithHash(id),
    // Not a change of the user resource (the cache holds no hash).
    replaceHash: (id, oldHash, newHash) => store.replaceHash(id, oldHash, newHash),

    async warm(batch = 1000): Promise<number> {
      if (max === 0 || changedWhileWarming) return 0;
      changedWhileWarming = new Set();
      let loaded = 0;
      let after = "00000000-0000-0000-0000-000000000000";
      try {
        while (columns.size() < max && feed.isCurrent()) {
          const users = await opts.warmBatch(after, batch);
          if (!feed.isCurrent()) break;
          for (const u of users) {
            if (columns.size() >= max) break;
            if (columns.find(u.id) >= 0 || changedWhileWarming.has(u.id)) continue;
            keep(u.id, u);
            if (columns.find(u.id) >= 0) loaded++;
          }
          if (users.length < batch) break;
          after = users[users.length - 1].id;
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch {
        // The database went away: the rest load on first use.
      } finally {
        changedWhileWarming = undefined;
      }
      return loaded;
    },

    size: () => columns.size(),
  };
}

/** A copy for a read that joined another's load (each caller gets its own object, as from the store). */
function copyOf(user: User | null): User | null {
  return user && { ...user, labels: { ...user.labels } };
}
