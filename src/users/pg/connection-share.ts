/**
 * The share of the pool that long-held connections may take. A WatchUsers snapshot holds one connection
 * from its first page to its last, and between pages it waits for its reader (a slow or stalled client
 * holds it as long as it likes). Unbounded, a burst of watchers took every connection of the pool and the
 * writes waited until they failed (UNAVAILABLE). With at most `limit` held at once, the rest of the pool
 * stays free for calls that hold a connection for one statement; further snapshots wait their turn.
 */

/** A counter of held connections with a queue of those waiting for one. */
export interface ConnectionShare {
  /** Waits for a place; resolves to the function that gives it back (call it exactly once). */
  acquire(): Promise<() => void>;
  /** Places taken now (for tests and metrics). */
  held(): number;
}

/** At most `limit` held at once. */
export function createConnectionShare(limit: number): ConnectionShare {
  let held = 0;
  const waiting: Array<() => void> = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else held--;
  };
  const once = () => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      release();
    };
  };
  return {
    acquire() {
      if (held < limit) {
        held++;
        return Promise.resolve(once());
      }
      // The place passes straight from the releaser to the next waiter: `held` stays as it is.
      return new Promise((resolve) => waiting.push(() => resolve(once())));
    },
    held: () => held,
  };
}

/** The share long-held connections get of a pool of `max`: half of it, at least one. */
export const longHeldShare = (max: number) => Math.max(1, Math.floor(max / 2));
