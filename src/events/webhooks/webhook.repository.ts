/**
 * The `webhooks` and `webhook_deliveries` rows as WebhookService reads and writes them (the dispatcher's
 * statements are in dispatcher.ts). Raw `pg` with named statements, as the other repositories.
 */
import type pg from "pg";
import { eventTime, newestSeq } from "../event-log.ts";

/** An endpoint as listed (never its secret). */
export interface WebhookRecord {
  id: string;
  url: string;
  eventTypes: string[];
  description: string;
  createTime: Date;
  state: "active" | "disabled";
}

/** One delivery attempt. */
export interface DeliveryRecord {
  /** Insertion order: the keyset of the newest-first listing. */
  id: string;
  eventId: string;
  eventType: string;
  attempt: number;
  statusCode: number;
  error: string;
  time: Date;
  nextAttemptTime: Date | null;
}

const WEBHOOK_COLUMNS = "id, url, event_types, description, create_time, state";

interface WebhookRow {
  id: string;
  url: string;
  event_types: string[];
  description: string;
  create_time: Date;
  state: "active" | "disabled";
}

const toRecord = (r: WebhookRow): WebhookRecord => ({
  id: r.id,
  url: r.url,
  eventTypes: r.event_types,
  description: r.description,
  createTime: r.create_time,
  state: r.state,
});

/** Creations serialise on this advisory lock ("whks"), so concurrent ones count one after the other. */
const CREATE_LOCK = 0x77686b73;

export function createWebhookRepository(pool: pg.Pool) {
  return {
    /**
     * Inserts an endpoint unless `max` exist already. Its cursor is the newest event now: only events
     * numbered after it are delivered (an event numbered while this commits is after the cursor read here,
     * so it is delivered, never skipped).
     */
    async create(input: {
      id: string;
      url: string;
      eventTypes: readonly string[];
      description: string;
      secretSealed: Buffer;
      max: number;
    }): Promise<WebhookRecord | "limit"> {
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query("select pg_advisory_xact_lock($1)", [CREATE_LOCK]);
        const count = await client.query<{ n: number }>("select count(*)::int as n from webhooks");
        if (count.rows[0].n >= input.max) {
          await client.query("rollback");
          return "limit";
        }
        const seq = await newestSeq(client);
        const time = seq > 0 ? await eventTime(client, seq) : null;
        const { rows } = await client.query<WebhookRow>({
          name: "webhook-create",
          text: `insert into webhooks (id, url, event_types, description, secret_sealed, state, create_time,
              cursor_seq, cursor_time, next_attempt_time)
            values ($1, $2, $3, $4, $5, 'active', now(), $6, coalesce($7, now()), now())
            returning ${WEBHOOK_COLUMNS}`,
          values: [input.id, input.url, input.eventTypes, input.description, input.secretSealed, seq, time],
        });
        await client.query("commit");
        return toRecord(rows[0]);
      } catch (err) {
        await client.query("rollback").catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },

    /** Every endpoint, oldest first. */
    async list(): Promise<WebhookRecord[]> {
      const { rows } = await pool.query<WebhookRow>({
        name: "webhook-list",
        text: `select ${WEBHOOK_COLUMNS} from webhooks order by create_time, id`,
      });
      return rows.map(toRecord);
    },

    async exists(id: string): Promise<boolean> {
      const { rowCount } = await pool.query({
        name: "webhook-exists",
        text: "select 1 from webhooks where id = $1",
        values: [id],
      });
      return (rowCount ?? 0) > 0;
    },

    /** Deletes an endpoint and (cascade) its deliveries; false when there was none. */
    async delete(id: string): Promise<boolean> {
      const { rowCount } = await pool.query({
        name: "webhook-delete",
        text: "delete from webhooks where id = $1",
        values: [id],
      });
      return (rowCount ?? 0) > 0;
    },

    /** At most `limit` attempts of an endpoint, newest first, before the attempt `before` (all when null). */
    async deliveries(webhookId: string, before: string | null, limit: number): Promise<DeliveryRecord[]> {
      const { rows } = await pool.query<{
        id: string;
        event_id: string;
        event_type: string;
        attempt: number;
        status_code: number;
        error: string;
        time: Date;
        next_attempt_time: Date | null;
      }>({
        name: "webhook-deliveries",
        text: `select id, event_id, event_type, attempt, status_code, error, time, next_attempt_time
          from webhook_deliveries where webhook_id = $1 and ($2::bigint is null or id < $2::bigint)
          order by id desc limit $3`,
        values: [webhookId, before, limit],
      });
      return rows.map((r) => ({
        id: r.id,
        eventId: r.event_id,
        eventType: r.event_type,
        attempt: r.attempt,
        statusCode: r.status_code,
        error: r.error,
        time: r.time,
        nextAttemptTime: r.next_attempt_time,
      }));
    },
  };
}

export type WebhookRepository = ReturnType<typeof createWebhookRepository>;
