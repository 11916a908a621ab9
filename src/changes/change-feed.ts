/**
 * The per-process tail of the change log. One dedicated connection LISTENs (never a pooled one); a
 * notification, or a poll as a safety net, makes it read every row after the last seq it saw and hand
 * them, in order, to every subscriber (watch streams, caches). If the connection drops it reconnects with
 * backoff and catches up from the last seq, so nothing is missed and nothing repeated. There is no query
 * per watcher per event: subscribers share each batch.
 */
import pg from "pg";
import type { Logger } from "pino";
import { CHANGE_CHANNEL, type ChangeType, type UserSnapshot } from "./change-log.ts";

/** One committed change. */
export interface ChangeEvent {
  seq: number;
  userId: string;
  type: ChangeType;
  time: Date;
  snapshot: UserSnapshot;
  /** The user before the change; null for a creation. */
  previous: UserSnapshot | null;
  revokeBefore: Date | null;
}

/** Receives batches of events in commit order. */
export type ChangeListener = (events: readonly ChangeEvent[]) => void;

const selectSince = `select seq, user_id, type, change_time, snapshot, previous, revoke_before
  from user_changes where seq > $1 order by seq limit $2`;

type Row = {
  seq: string;
  user_id: string;
  type: ChangeType;
  change_time: Date;
  snapshot: UserSnapshot;
  previous: UserSnapshot | null;
  revoke_before: Date | null;
};

function toEvent(r: Row): ChangeEvent {
  return {
    seq: Number(r.seq),
    userId: r.user_id,
    type: r.type,
    time: r.change_time,
    snapshot: r.snapshot,
    previous: r.previous,
    revokeBefore: r.revoke_before,
  };
}

/** Reads up to `limit` events after `seq` with any queryable (pool or client). */
export async function readChangesSince(db: pg.Pool | pg.Client, seq: number, limit: number): Promise<ChangeEvent[]> {
  const res = await db.query<Row>({ name: "changes-since", text: selectSince, values: [seq, limit] });
  return res.rows.map(toEvent);
}

/** The seq of the last change committed (0 for none), read with any queryable (in its snapshot, if any). */
export async function logEnd(db: pg.Pool | pg.ClientBase): Promise<number> {
  const { rows } = await db.query<{ seq: string | null }>("select max(seq) as seq from user_changes");
  return Number(rows[0]?.seq ?? 0);
}

/** Builds the feed; call `start()` once. */
export function createChangeFeed(opts: { url: string; log: Logger; pollMs?: number; batch?: number }) {
  const listeners = new Set<ChangeListener>();
  const pollMs = opts.pollMs ?? 1000;
  const batch = opts.batch ?? 1000;
  let client: pg.Client | undefined;
  let last = 0;
  let connected = false;
  // Connected and caught up since the last (re)connect: nothing committed is missing but the latest moments.
  let current = false;
  let closed = false;
  let draining: Promise<void> | undefined;
  let again = false;
  let poll: NodeJS.Timeout | undefined;
  let backoff = 100;

  async function drainOnce(c: pg.Client): Promise<void> {
    for (;;) {
      const events = await readChangesSince(c, last, batch);
      if (events.length === 0) return;
      last = events[events.length - 1].seq;
      for (const l of listeners) {
        try {
          l(events);
        } catch (err) {
          opts.log.error({ errorName: (err as Error)?.name }, "change listener failed");
        }
      }
      if (events.length < batch) return;
    }
  }

  /** Reads everything new; concurrent wake-ups coalesce into one more pass. */
  function drain(): Promise<void> {
    if (draining) {
      again = true;
      return draining;
    }
    const c = client;
    if (!c || !connected) return Promise.resolve();
    draining = (async () => {
      try {
        do {
          again = false;
          await drainOnce(c);
        } while (again);
        if (client === c) current = true;
      } catch {
        // The connection failed mid-read; the error handler reconnects and we catch up then.
      } finally {
        draining = undefined;
      }
    })();
    return draining;
  }

  async function connect(): Promise<void> {
    const c = new pg.Client({ connectionString: opts.url, connectionTimeoutMillis: 2000, keepAlive: true });
    c.on("error", () => reconnect(c));
    c.on("end", () => reconnect(c));
    c.on("notification", () => void drain());
    await c.connect();
    await c.query(`listen ${CHANGE_CHANNEL}`);
    client = c;
    connected = true;
    backoff = 100;
  }

  function reconnect(c: pg.Client): void {
    if (client !== c || closed) return;
    connected = false;
    current = false;
    client = undefined;
    c.removeAllListeners();
    c.on("error", () => {});
    void c.end().catch(() => {});
    const retry = () => {
      if (closed) return;
      connect().then(
        () => {
          opts.log.info({ lastSeq: last }, "change feed reconnected");
          void drain();
        },
        () => {
          backoff = Math.min(backoff * 2, 2000);
          setTimeout(retry, backoff).unref();
        },
      );
    };
    setTimeout(retry, backoff).unref();
  }

  return {
    /** Connects and starts from the current end of the log. */
    async start(): Promise<void> {
      await connect();
      last = await logEnd(client as pg.Client);
      current = true;
      poll = setInterval(() => void drain(), pollMs);
      poll.unref();
    },
    /** Subscribes to every event after now; returns the unsubscribe function. */
    subscribe(listener: ChangeListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    /** The seq of the last event delivered to subscribers. */
    lastSeq: () => last,
    /** True while the LISTEN connection is up. */
    isConnected: () => connected,
    /** True while connected and caught up since the last reconnect (no committed change is missing). */
    isCurrent: () => current,
    /** Reads now instead of waiting for the notification (used right after a local write). */
    poke: () => drain(),
    async close(): Promise<void> {
      closed = true;
      clearInterval(poll);
      const c = client;
      client = undefined;
      connected = false;
      current = false;
      if (c) {
        c.removeAllListeners();
        c.on("error", () => {});
        await c.end().catch(() => {});
      }
    },
  };
}

/** The change feed of a process. */
export type ChangeFeed = ReturnType<typeof createChangeFeed>;
