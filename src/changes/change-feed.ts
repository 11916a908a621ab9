/**
 * The per-process tail of the change log. One dedicated connection LISTENs (never a pooled one); a
 * notification, or a poll as a safety net, makes it read every row after the last seq it saw and hand
 * them, in order, to every subscriber (watch streams, caches). If the connection drops it reconnects with
 * backoff and catches up from the last seq, so nothing is missed and nothing repeated. There is no query
 * per watcher per event: subscribers share each batch.
 *
 * The same connection runs the change log's sequencer (`sequenceChanges`, docs/adr/0016-sequencer.md): after
 * a local write (`poke`, waiting for another sequencer if one runs), and on every poll (only if none runs),
 * so a change whose writer died between its commit and the sequencing is numbered within a poll. Calls
 * coalesce: at most one pass in flight per process, plus one more for whatever asked meanwhile. On its own
 * connection it never takes a pooled one from the writes; a failure is logged by name and code (no SQL) and
 * retried at the next poke or poll, or after the reconnect.
 */
import pg from "pg";
import type { Logger } from "pino";
import { CHANGE_CHANNEL, type ChangeType, sequenceChanges, type UserSnapshot } from "./change-log.ts";

/** One committed change. */
export interface ChangeEvent {
  seq: number;
  /** The change-log row's id (taken at insert, before the row had a seq). */
  id: number;
  userId: string;
  type: ChangeType;
  time: Date;
  snapshot: UserSnapshot;
  /** The user before the change; null for a creation. */
  previous: UserSnapshot | null;
  revokeBefore: Date | null;
  /** Who made it; null on rows logged before actors were recorded. */
  actor: RecordedActor | null;
}

/** An actor as the change log records it (docs/adr/0022). */
export interface RecordedActor {
  kind: "user" | "api_key" | "system";
  userId: string | null;
  apiKeyId: string | null;
  clientAddress: string | null;
  requestId: string | null;
}

/** The change log's actor columns, as selected by the readers of the log. */
export const ACTOR_COLUMNS = "actor_kind, actor_user_id, actor_api_key_id, actor_client_address, actor_request_id";

/** The actor of a row selected with ACTOR_COLUMNS. */
export function actorOfRow(r: ActorRow): RecordedActor | null {
  if (!r.actor_kind) return null;
  return {
    kind: r.actor_kind,
    userId: r.actor_user_id,
    apiKeyId: r.actor_api_key_id,
    clientAddress: r.actor_client_address,
    requestId: r.actor_request_id,
  };
}

export interface ActorRow {
  actor_kind: RecordedActor["kind"] | null;
  actor_user_id: string | null;
  actor_api_key_id: string | null;
  actor_client_address: string | null;
  actor_request_id: string | null;
}

/** Receives batches of events in commit order. */
export type ChangeListener = (events: readonly ChangeEvent[]) => void;

const selectSince = `select seq, id, user_id, type, change_time, snapshot, previous, revoke_before, ${ACTOR_COLUMNS}
  from user_changes where seq > $1 order by seq limit $2`;

type Row = ActorRow & {
  seq: string;
  id: string;
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
    id: Number(r.id),
    userId: r.user_id,
    type: r.type,
    time: r.change_time,
    snapshot: r.snapshot,
    previous: r.previous,
    revokeBefore: r.revoke_before,
    actor: actorOfRow(r),
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

/**
 * Where a REPEATABLE READ snapshot stands in the log (read in it): the last seq it sees, and the changes it
 * sees committed but not yet numbered. Those get seqs above `seq` although the snapshot reflects them, so a
 * reader of the snapshot skips them later (docs/adr/0016-sequencer.md); `snapshot` (PostgreSQL's, as text)
 * lets a later reader find them again from a resume token (`reflectedChanges`).
 */
export interface LogPosition {
  seq: number;
  unsequenced: number[];
  snapshot: string;
}

/** The position of the snapshot of `db`'s transaction (REPEATABLE READ, begun by the caller). */
export async function logPosition(db: pg.ClientBase): Promise<LogPosition> {
  const { rows } = await db.query<{ seq: string | null; ids: string[]; snapshot: string }>(
    `select (select max(seq) from user_changes) as seq, pg_current_snapshot()::text as snapshot,
       array(select id from user_changes where seq is null order by id)::text[] as ids`,
  );
  return { seq: Number(rows[0].seq ?? 0), unsequenced: rows[0].ids.map(Number), snapshot: rows[0].snapshot };
}

/**
 * The ids of the changes that `snapshot` saw committed and that have no seq yet, or one after `seq`: what a
 * reader whose snapshot that was, and who has read the log up to `seq`, must still skip.
 */
export async function reflectedChanges(db: pg.Pool | pg.ClientBase, seq: number, snapshot: string): Promise<number[]> {
  const { rows } = await db.query<{ id: string }>({
    name: "reflected-changes",
    text: `select id from user_changes where (seq > $1 or seq is null)
      and pg_visible_in_snapshot(writer_xid, $2::pg_snapshot) order by id`,
    values: [seq, snapshot],
  });
  return rows.map((r) => Number(r.id));
}

/** Builds the feed; call `start()` once. */
export function createChangeFeed(opts: { url: string; log: Logger; pollMs?: number; batch?: number }) {
  const listeners = new Set<ChangeListener>();
  const numberedListeners = new Set<() => void>();
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
  // The sequencer run the next pass owes: "wait" after a local write or a reconnect, "try" on a poll.
  let sequence: "wait" | "try" | undefined;
  let failing = false;
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

  /** Numbers committed changes, batch after batch while full ones come; failures are logged and left to the next poll. */
  async function sequenceOnce(c: pg.Client, wait: boolean): Promise<void> {
    try {
      for (let n = batch; n === batch; ) n = (await sequenceChanges(c, wait, batch)) ?? 0;
      if (failing) opts.log.info("change log sequencing works again");
      failing = false;
    } catch (err) {
      // A dropped connection is the error handler's (it reconnects, then sequences); anything else is logged
      // once (by name and SQLSTATE, never the statement) until it works again.
      if (client === c && connected && !failing) {
        const e = err as { name?: string; code?: string };
        opts.log.error({ errorName: e?.name, code: e?.code }, "change log sequencing failed; retried on each poll");
      }
      failing = client === c && connected;
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
          const run = sequence;
          sequence = undefined;
          if (run) await sequenceOnce(c, run === "wait");
          await drainOnce(c);
        } while (again);
        if (client === c) current = true;
      } catch {
        // The connection failed mid-read; the error handler reconnects and we catch up then.
        if (sequence === undefined) sequence = "wait";
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
    c.on("notification", () => {
      for (const l of numberedListeners) {
        try {
          l();
        } catch (err) {
          opts.log.error({ errorName: (err as Error)?.name }, "sequencer listener failed");
        }
      }
      void drain();
    });
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
          sequence = "wait";
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
      poll = setInterval(() => {
        sequence ??= "try";
        void drain();
      }, pollMs);
      poll.unref();
    },
    /** Subscribes to every event after now; returns the unsubscribe function. */
    subscribe(listener: ChangeListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    /**
     * Calls `listener` on every NOTIFY of the sequencer: something was numbered, a user change or an auth
     * event (outbound delivery wakes on it: src/events). Returns the unsubscribe function.
     */
    onNumbered(listener: () => void): () => void {
      numberedListeners.add(listener);
      return () => numberedListeners.delete(listener);
    },
    /** The seq of the last event delivered to subscribers. */
    lastSeq: () => last,
    /** True while the LISTEN connection is up. */
    isConnected: () => connected,
    /** True while connected and caught up since the last reconnect (no committed change is missing). */
    isCurrent: () => current,
    /**
     * Right after a local write commits: numbers it (with whatever else is committed) and reads it, instead
     * of waiting for another process's sequencer or the poll. Resolves when that pass is done.
     */
    poke(): Promise<void> {
      sequence = "wait";
      return drain();
    },
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
