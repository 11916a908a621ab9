/**
 * A publisher's row in `event_publishers` (Migration20261207000200): one replica at a time holds the lease,
 * and only the holder moves the cursor. Lease times are the database's clock, so replicas' clocks never
 * matter. The lease is not what keeps the stream exact (the publishes are fenced on the stream's last
 * sequence: ./stream.ts, ./publisher.ts); it keeps the replicas from contending for every event.
 */
import type pg from "pg";
import { eventTime, newestSeq, readEvents } from "../event-log.ts";

/** The cursor of a held lease: the seq of the last event the broker confirmed. */
interface Held {
  cursor: number;
}

export function createPublisherLease(opts: { pool: pg.Pool; name: string; owner: string; ttlMs: number }) {
  const { pool, name, owner, ttlMs } = opts;
  return {
    /**
     * Takes the lease when it is free, expired or already ours, renewing it for `ttlMs`; null while another
     * replica holds it. A missing row is created with the cursor at 0.
     */
    async claim(): Promise<Held | null> {
      const { rows } = await pool.query<{ cursor_seq: string }>({
        name: "event-publisher-claim",
        text: `insert into event_publishers (name, lease_owner, lease_until)
          values ($1, $2, now() + $3 * interval '1 millisecond')
          on conflict (name) do update set lease_owner = excluded.lease_owner, lease_until = excluded.lease_until
          where event_publishers.lease_owner = excluded.lease_owner or event_publishers.lease_owner is null
            or event_publishers.lease_until < now()
          returning cursor_seq`,
        values: [name, owner, ttlMs],
      });
      return rows[0] ? { cursor: Number(rows[0].cursor_seq) } : null;
    },

    /**
     * Saves the cursor (and the time of the event at it, for the lag) and renews the lease; false when the
     * lease is another replica's now, so nothing was written.
     */
    async save(cursor: number, time: Date | null): Promise<boolean> {
      const { rowCount } = await pool.query({
        name: "event-publisher-save",
        text: `update event_publishers
          set cursor_seq = $3, cursor_time = coalesce($4, cursor_time), lease_until = now() + $5 * interval '1 millisecond'
          where name = $1 and lease_owner = $2`,
        values: [name, owner, cursor, time, ttlMs],
      });
      return rowCount === 1;
    },

    /** Gives the lease up (at shutdown), so another replica takes over at once instead of after `ttlMs`. */
    async release(): Promise<void> {
      await pool.query({
        name: "event-publisher-release",
        text: "update event_publishers set lease_owner = null, lease_until = null where name = $1 and lease_owner = $2",
        values: [name, owner],
      });
    },
  };
}

/**
 * How far a publisher is behind, in seconds: the newest event's time minus the time of the last event it
 * published (of the first it has not, when it has published none yet); 0 when caught up. Read from the
 * database, so every replica reports the same.
 */
export async function publishLagSeconds(pool: pg.Pool, name: string): Promise<number> {
  const { rows } = await pool.query<{ cursor_seq: string; cursor_time: Date | null }>({
    name: "event-publisher-cursor",
    text: "select cursor_seq, cursor_time from event_publishers where name = $1",
    values: [name],
  });
  const cursor = Number(rows[0]?.cursor_seq ?? 0);
  const newest = await newestSeq(pool);
  if (newest <= cursor) return 0;
  const [newestTime, since] = await Promise.all([
    eventTime(pool, newest),
    rows[0]?.cursor_time ?? readEvents(pool, { after: cursor, limit: 1 }).then((p) => p.events[0]?.time ?? null),
  ]);
  return newestTime && since ? Math.max(0, (newestTime.getTime() - since.getTime()) / 1000) : 0;
}

/** The id of the event at `seq` (null when there is none: never numbered, or pruned). */
export async function eventIdAt(pool: pg.Pool, seq: number): Promise<string | null> {
  const { rows } = await pool.query<{ id: string }>({
    name: "event-publisher-event-id",
    text: `select id::text from user_changes where seq = $1
      union all select id::text from auth_events where seq = $1 limit 1`,
    values: [seq],
  });
  return rows[0]?.id ?? null;
}
