/**
 * Delivery lag per active endpoint, for `webhook_delivery_lag_seconds`: the newest event's time minus the
 * time of the last event the endpoint's cursor passed (delivered, or skipped as of another type); 0 when
 * its cursor is at the newest event. Read at scrape time, so it is current and costs nothing in between.
 */
import type pg from "pg";
import { eventTime, newestSeq } from "../event-log.ts";

export async function deliveryLags(pool: pg.Pool): Promise<{ webhookId: string; seconds: number }[]> {
  const seq = await newestSeq(pool);
  const newest = seq > 0 ? await eventTime(pool, seq) : null;
  const { rows } = await pool.query<{ id: string; cursor_seq: string; cursor_time: Date }>({
    name: "webhook-lag",
    text: "select id, cursor_seq, cursor_time from webhooks where state = 'active'",
  });
  return rows.map((r) => ({
    webhookId: r.id,
    seconds:
      Number(r.cursor_seq) >= seq || !newest ? 0 : Math.max(0, (newest.getTime() - r.cursor_time.getTime()) / 1000),
  }));
}
