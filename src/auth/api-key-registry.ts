/**
 * The live API keys of every user, in memory, so that authenticating a call with a key costs a hash and a
 * map lookup, never a query (docs/adr/0019-api-keys.md).
 *
 * - **Loaded at start** (every key not deleted), then **polled** every `pollMs` (500 ms): the rows whose
 *   `update_time` moved, deletions included (they are soft), read back to a minute before the previous
 *   read (database clock), as revoked-sessions.ts does, because `update_time` is stamped before its
 *   transaction commits. A replica whose polls failed for longer than that reloads everything instead.
 * - **The replica that creates or deletes a key applies it at once**; a deletion is also remembered
 *   (tombstone) so that a poll that read the row before the deletion committed cannot bring it back.
 * - **A miss** (a well-formed secret that is not here) may be a key created on another replica since the
 *   last poll: it waits for a poll that starts after it, and is answered from memory then. Polls start at
 *   most every `minGapMs` (100 ms) whatever asks for them, and every miss waiting shares the next one, so a
 *   flood of made-up secrets costs at most 10 queries a second, not one per call. Secrets of keys known to
 *   be deleted are refused at once.
 * - **Last use** is noted in memory on every call and written in one batch every `lastUsedEveryMs` (one
 *   minute by default): at most one write per key per period per replica, off the request path.
 */
import type { Logger } from "pino";
import type { ApiKeyRepository, ApiKeyState } from "./api-key.repository.ts";
import { hashApiKeySecret, wellFormedApiKey } from "./api-key-secret.ts";

/** Why the registry read the database: its start (or a reload), its timer, or secrets it did not know. */
export type PollReason = "load" | "interval" | "miss";

/** A usable key, as authentication needs it. */
export interface LiveKey {
  readonly id: string;
  readonly userId: string;
  readonly hash: string;
  readonly createMs: number;
  /** When the key stops working (ms); NO_EXPIRY when never. */
  readonly expiresAtMs: number;
}

/** The expiry of a key without one (year 9999): finite, so it can stand in a Caller's expiresAtMs. */
export const NO_EXPIRY = Date.UTC(9999, 11, 31);

const OVERLAP_MS = 60_000;
// How long a deleted key's id and hash are remembered: well past the overlap every poll reads again.
const TOMBSTONE_MS = 10 * 60_000;

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms).unref());

/** Builds the registry; call `start()` once. */
export function createApiKeyRegistry(opts: {
  keys: ApiKeyRepository;
  log: Logger;
  pollMs?: number;
  minGapMs?: number;
  lastUsedEveryMs?: number;
  /** Told of every poll that reaches the database, and why it was made. */
  onPoll?: (why: PollReason) => void;
}) {
  const pollMs = opts.pollMs ?? 500;
  const minGapMs = opts.minGapMs ?? 100;
  const byHash = new Map<string, LiveKey>();
  const byId = new Map<string, LiveKey>();
  const deletedIds = new Map<string, number>(); // id -> forget after (ms)
  const deletedHashes = new Map<string, number>(); // hash -> forget after (ms)
  let uses = new Map<string, number>(); // id -> last use (ms), not yet written
  let readAt = 0; // the database's time of the last successful read (ms)
  let lastSuccess = 0; // when a poll last succeeded (ms, this clock)
  let lastStart = 0;
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const timers: NodeJS.Timeout[] = [];

  function forget(id: string): void {
    const key = byId.get(id);
    if (!key) return;
    byId.delete(id);
    byHash.delete(key.hash);
  }

  function tombstone(state: Pick<ApiKeyState, "id" | "hash">): void {
    const until = Date.now() + TOMBSTONE_MS;
    deletedIds.set(state.id, until);
    deletedHashes.set(state.hash, until);
    forget(state.id);
  }

  function apply(state: ApiKeyState): void {
    if (state.deleteTime) {
      tombstone(state);
      return;
    }
    if (deletedIds.has(state.id)) return;
    forget(state.id);
    const key: LiveKey = {
      id: state.id,
      userId: state.userId,
      hash: state.hash,
      createMs: state.createTime.getTime(),
      expiresAtMs: state.expireTime?.getTime() ?? NO_EXPIRY,
    };
    byHash.set(key.hash, key);
    byId.set(key.id, key);
  }

  async function load(why: PollReason): Promise<void> {
    const full = Date.now() - lastSuccess > OVERLAP_MS;
    opts.onPoll?.(full ? "load" : why);
    const read = full ? await opts.keys.live() : await opts.keys.changedSince(new Date(readAt - OVERLAP_MS));
    if (full) {
      // Keys deleted while this replica could not read are absent from the result: start over.
      const ids = new Set(read.keys.map((r) => r.id));
      for (const id of [...byId.keys()]) if (!ids.has(id)) forget(id);
    }
    for (const r of read.keys) apply(r);
    readAt = read.at.getTime();
    lastSuccess = Date.now();
    const now = Date.now();
    for (const [id, until] of deletedIds) if (until < now) deletedIds.delete(id);
    for (const [h, until] of deletedHashes) if (until < now) deletedHashes.delete(h);
  }

  /** Starts a poll unless one is running; resolves when the running one ends. Never rejects. */
  function poll(why: PollReason): Promise<void> {
    running ??= (async () => {
      lastStart = Date.now();
      try {
        await load(why);
      } catch (err) {
        // The database is away: keep what we know and try again at the next tick.
        opts.log.debug({ errorName: (err as Error)?.name }, "api keys poll failed");
      } finally {
        running = undefined;
      }
    })();
    return running;
  }

  /** Waits for the poll running (it may have read before the key was committed), then starts the next. */
  async function nextPoll(): Promise<void> {
    // Always awaits, even with no poll running: `queued` is assigned before the line after this runs.
    await running;
    const wait = lastStart + minGapMs - Date.now();
    if (wait > 0) await sleep(wait);
    queued = undefined; // misses from now on may come after the poll below starts: they queue the next
    await poll("miss");
  }

  /** Resolves after a poll that started after this call (misses share it; at most one per minGapMs). */
  function pollAfterNow(): Promise<void> {
    queued ??= nextPoll();
    return queued;
  }

  async function flushUses(): Promise<void> {
    if (uses.size === 0) return;
    const batch = uses;
    uses = new Map();
    try {
      await opts.keys.markUsed(batch);
    } catch (err) {
      // Lost for this period; the next use records it again.
      opts.log.debug({ errorName: (err as Error)?.name }, "api keys last-use write failed");
    }
  }

  return {
    /** Loads the live keys, then polls and writes last uses periodically. */
    async start(): Promise<void> {
      await load("load");
      timers.push(
        setInterval(() => void poll("interval"), pollMs),
        setInterval(() => void flushUses(), opts.lastUsedEveryMs ?? 60_000),
      );
      for (const t of timers) t.unref();
    },

    /**
     * The key of a secret, if it is live (not deleted; expiry is the caller's to check). A secret that is
     * well formed but unknown waits for one shared, rate-limited poll.
     */
    async find(secret: string): Promise<LiveKey | undefined> {
      if (!wellFormedApiKey(secret)) return undefined;
      const hash = hashApiKeySecret(secret);
      const key = byHash.get(hash);
      if (key || deletedHashes.has(hash)) return key;
      await pollAfterNow();
      return byHash.get(hash);
    },

    /** True while the key exists and has not expired (long streams ask again as they go). */
    isLive(id: string): boolean {
      const key = byId.get(id);
      return key !== undefined && Date.now() < key.expiresAtMs;
    },

    /** Notes a call made with the key (written with the next batch). */
    used(id: string): void {
      uses.set(id, Date.now());
    },

    /** A key this replica just created. */
    added(state: ApiKeyState): void {
      apply(state);
    },

    /** A key this replica just deleted. */
    deleted(state: ApiKeyState): void {
      apply(state);
    },

    /** How many keys are live (not deleted; expired ones included until deleted). */
    size: () => byId.size,

    /** Stops polling and writes the last uses still pending. */
    async close(): Promise<void> {
      for (const t of timers) clearInterval(t);
      await flushUses();
    },
  };
}

/** The registry. */
export type ApiKeyRegistry = ReturnType<typeof createApiKeyRegistry>;
