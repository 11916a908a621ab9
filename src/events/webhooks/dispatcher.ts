/**
 * Webhook delivery, on every replica (docs/webhooks.md, "Design"). An endpoint is delivered to by one
 * replica at a time: the one holding its lease in PostgreSQL (`lease_owner`, `lease_until`), claimed with
 * `for update skip locked` when the endpoint is due (its retry time has come) and has events after its
 * cursor, renewed while it delivers, released when it has caught up or failed. Every write that moves the
 * cursor or the retry state, and the delivery row that goes with it, is fenced on the lease (`where
 * lease_owner = me`), so a replica that lost its lease (or an endpoint deleted meanwhile) changes nothing.
 *
 * Per endpoint strictly one event at a time, in seq order: the event after the cursor is retried until it is
 * delivered (or the endpoint is disabled) and nothing after it is sent before. Wakes on every NOTIFY of the
 * sequencer (`wake`), on a timer at the next retry it scheduled, and on a poll as a safety net.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";
import type { Logger } from "pino";
import { Webhook } from "standardwebhooks";
import { eventTime, type OutboundEvent, readEvents } from "../event-log.ts";
import type { SecretBox } from "./secret-box.ts";
import { type AttemptResult, connectionsFor, send } from "./sender.ts";

const LEASE_MS = 30_000;
const ATTEMPT_TIMEOUT_MS = 10_000;
const POLL_MS = 1000;
const MAX_RETRY_MS = 3_600_000;
/** Events read per query; still sent one at a time. */
const BATCH = 100;

/** A claimed endpoint, as the claim returns it. */
interface Claimed {
  id: string;
  url: string;
  event_types: string[];
  secret_sealed: Buffer;
  cursor_seq: string;
  attempt: number;
}

const NEWEST_SEQ = "coalesce(greatest((select max(seq) from user_changes), (select max(seq) from auth_events)), 0)";

const CLAIM = `
  update webhooks w set lease_owner = $1, lease_until = now() + make_interval(secs => $2::double precision / 1000)
  from (
    select id from webhooks
    where state = 'active' and next_attempt_time <= now()
      and (lease_owner is null or lease_until < now())
      and cursor_seq < ${NEWEST_SEQ}
      and id <> all($4::uuid[])
    order by next_attempt_time
    limit $3
    for update skip locked
  ) due
  where w.id = due.id
  returning w.id, w.url, w.event_types, w.secret_sealed, w.cursor_seq, w.attempt`;

/** Delivered: the cursor moves past the event, the retry state resets, the attempt is recorded. */
const SUCCEEDED = `
  with moved as (
    update webhooks set cursor_seq = $3, cursor_time = $4, attempt = 0, failing_since = null,
      lease_until = now() + make_interval(secs => $5::double precision / 1000)
    where id = $1 and lease_owner = $2
    returning id
  )
  insert into webhook_deliveries (webhook_id, event_id, event_type, attempt, status_code, error, time)
  select id, $6, $7, $8, $9, '', $10 from moved`;

/**
 * Failed: the next try is scheduled (or the endpoint disabled, after 3 days of failures), the lease released
 * so any replica may make it, and the attempt recorded with when it will be tried again.
 */
const FAILED = `
  with failed as (
    update webhooks set attempt = $3, failing_since = coalesce(failing_since, now()),
      state = case when now() - coalesce(failing_since, now()) >= interval '3 days' then 'disabled' else 'active' end,
      next_attempt_time = now() + make_interval(secs => $4::double precision / 1000),
      lease_owner = null, lease_until = null
    where id = $1 and lease_owner = $2
    returning id, state, next_attempt_time
  )
  insert into webhook_deliveries (webhook_id, event_id, event_type, attempt, status_code, error, time, next_attempt_time)
  select id, $5, $6, $3, $7, $8, $9, case when state = 'active' then next_attempt_time end from failed
  returning next_attempt_time`;

/** Caught up: the cursor moves past events of other types (to `readTo`), and the lease is released. */
const CAUGHT_UP = `
  update webhooks set cursor_seq = greatest(cursor_seq, $3), cursor_time = coalesce($4, cursor_time),
    lease_owner = null, lease_until = null
  where id = $1 and lease_owner = $2`;

/** The secret does not open (the server key changed?): tried again in a while, not in a hot loop. */
const POSTPONE = `
  update webhooks set next_attempt_time = now() + interval '1 minute', lease_owner = null, lease_until = null
  where id = $1 and lease_owner = $2`;

const RENEW = `
  update webhooks set lease_until = now() + make_interval(secs => $2::double precision / 1000)
  where lease_owner = $1 and id = any($3::uuid[]) returning id`;

const RELEASE = "update webhooks set lease_owner = null, lease_until = null where lease_owner = $1 and id = $2";
const RELEASE_ALL = "update webhooks set lease_owner = null, lease_until = null where lease_owner = $1";

/** The request body of an event (Standard Webhooks' `{type, timestamp, data}`). */
function payloadOf(event: OutboundEvent): string {
  return JSON.stringify({ type: event.type, timestamp: event.time.toISOString(), data: event.data });
}

export interface DispatcherOptions {
  pool: pg.Pool;
  log: Logger;
  secrets: SecretBox;
  allowPrivate: boolean;
  /** Endpoints delivered to at once by this replica. */
  concurrency: number;
  /** The first retry's delay; each later one doubles, at most 1 h. */
  retryBaseMs: number;
  /** Every attempt's outcome (not those aborted by shutdown), for the metrics. */
  onAttempt(result: AttemptResult): void;
}

export function createDispatcher(opts: DispatcherOptions) {
  const { pool, log } = opts;
  const owner = randomUUID();
  /** Endpoints this replica delivers to now, with what aborts their attempt. */
  const workers = new Map<string, { abort: AbortController; done: Promise<void> }>();
  const retryTimers = new Set<NodeJS.Timeout>();
  let stopped = false;
  let pumping: Promise<void> | undefined;
  let again = false;
  let claimFailing = false;
  let poll: NodeJS.Timeout | undefined;
  let renewal: NodeJS.Timeout | undefined;

  const query = (name: string, text: string, values: unknown[]) => pool.query({ name, text, values });

  /** Claims as many due endpoints as there is room for, and starts a worker on each. */
  async function pumpOnce(): Promise<void> {
    const room = opts.concurrency - workers.size;
    if (room <= 0 || stopped) return;
    const { rows } = await pool.query<Claimed>({
      name: "webhook-claim",
      text: CLAIM,
      values: [owner, LEASE_MS, room, [...workers.keys()]],
    });
    for (const row of rows) start(row);
  }

  function wake(): void {
    if (stopped) return;
    if (pumping) {
      again = true;
      return;
    }
    pumping = (async () => {
      try {
        do {
          again = false;
          await pumpOnce();
        } while (again && !stopped);
        if (claimFailing) log.info("claiming webhooks works again");
        claimFailing = false;
      } catch (err) {
        // Once per outage, not at every poll while the database is away.
        if (!claimFailing) logFailure(err, "claiming webhooks failed; retried at every poll");
        claimFailing = true;
      } finally {
        pumping = undefined;
      }
    })();
  }

  /** Logs a database or other failure by name and code: never a statement, a URL or a secret. */
  function logFailure(err: unknown, msg: string, webhookId?: string): void {
    const e = err as { name?: string; code?: string };
    log.error({ webhookId, errorName: e?.name, code: e?.code }, msg);
  }

  function start(ep: Claimed): void {
    const abort = new AbortController();
    const done = deliver(ep, abort.signal)
      .catch(async (err) => {
        if (abort.signal.aborted) return;
        logFailure(err, "webhook delivery failed; the endpoint is retried", ep.id);
        await query("webhook-release", RELEASE, [owner, ep.id]).catch(() => {});
      })
      .finally(() => {
        workers.delete(ep.id);
        wake();
      });
    workers.set(ep.id, { abort, done });
    // Claimed by a pump that was under way when stop() began: given back at once.
    if (stopped) abort.abort(new Error("shutting down"));
  }

  function retryIn(ms: number): void {
    const t = setTimeout(() => {
      retryTimers.delete(t);
      wake();
    }, ms);
    t.unref();
    retryTimers.add(t);
  }

  /** Delivers the endpoint's events in order until it has caught up, an attempt fails, or the lease is lost. */
  async function deliver(ep: Claimed, signal: AbortSignal): Promise<void> {
    let signer: Webhook;
    try {
      signer = new Webhook(opts.secrets.open(ep.id, ep.secret_sealed));
    } catch (err) {
      logFailure(err, "a webhook's signing secret does not open (was the server key changed?); postponed", ep.id);
      await query("webhook-postpone", POSTPONE, [ep.id, owner]);
      return;
    }
    let cursor = Number(ep.cursor_seq);
    let failures = ep.attempt;
    // One kept-alive connection for the run (sender.ts): every attempt of it goes to this one endpoint.
    const agent = connectionsFor(ep.url);
    // A success is recorded (cursor, delivery row: fenced on the lease) while the next event is sent: at most
    // one record in flight, each awaited before the next starts, so they land in order. If it finds the lease
    // gone, the event sent meanwhile is also sent by the new holder (at least once, same webhook-id), and
    // this run stops. Sending and recording one after the other made a delivery cost both round trips.
    let recording: Promise<boolean> = Promise.resolve(true);
    try {
      while (!signal.aborted) {
        const page = await readEvents(pool, { after: cursor, limit: BATCH, types: ep.event_types });
        if (page.events.length === 0) {
          if (!(await recording)) return;
          const time = page.readTo > cursor ? await eventTime(pool, page.readTo) : null;
          await query("webhook-caught-up", CAUGHT_UP, [ep.id, owner, page.readTo, time]);
          return;
        }
        for (const event of page.events) {
          const body = payloadOf(event);
          const now = new Date();
          const result = await send({
            url: ep.url,
            headers: {
              "webhook-id": event.id,
              "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
              "webhook-signature": signer.sign(event.id, now, body),
            },
            body,
            allowPrivate: opts.allowPrivate,
            timeoutMs: ATTEMPT_TIMEOUT_MS,
            signal,
            agent,
          });
          opts.onAttempt(result);
          // Lease lost, or the endpoint deleted: whoever holds it now delivers from its own cursor.
          if (!(await recording)) return;
          const attempt = failures + 1;
          if (result.ok) {
            recording = query("webhook-succeeded", SUCCEEDED, [
              ep.id,
              owner,
              event.seq,
              event.time,
              LEASE_MS,
              event.id,
              event.type,
              attempt,
              result.status,
              now,
            ]).then((moved) => moved.rowCount !== 0);
            cursor = event.seq;
            failures = 0;
            continue;
          }
          const delay = Math.min(opts.retryBaseMs * 2 ** failures, MAX_RETRY_MS);
          const { rows } = await pool.query<{ next_attempt_time: Date | null }>({
            name: "webhook-failed",
            text: FAILED,
            values: [ep.id, owner, attempt, delay, event.id, event.type, result.status, result.error, now],
          });
          if (rows.length === 0) return;
          if (rows[0].next_attempt_time) retryIn(delay);
          else log.warn({ webhookId: ep.id }, "webhook disabled: its deliveries failed for 3 days");
          return;
        }
        if (!(await recording)) return;
      }
    } finally {
      // A record still in flight lands (or fails: its event is then sent again) before the lease is given up.
      await recording.catch(() => false);
      agent.destroy();
    }
  }

  /** Keeps the leases of the endpoints being delivered to; a worker whose lease is gone stops at once. */
  async function renew(): Promise<void> {
    const ids = [...workers.keys()];
    if (ids.length === 0) return;
    const { rows } = await pool.query<{ id: string }>({
      name: "webhook-renew",
      text: RENEW,
      values: [owner, LEASE_MS, ids],
    });
    const kept = new Set(rows.map((r) => r.id));
    for (const id of ids) if (!kept.has(id)) workers.get(id)?.abort.abort(new Error("lease lost"));
  }

  return {
    /** Something new was numbered: deliver it. */
    wake,
    start(): void {
      poll = setInterval(wake, POLL_MS);
      poll.unref();
      renewal = setInterval(
        () => renew().catch((err) => logFailure(err, "renewing webhook leases failed")),
        LEASE_MS / 3,
      );
      renewal.unref();
      wake();
    },
    /** Stops: in-flight attempts aborted (not recorded: the event is sent again), leases released. */
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(poll);
      clearInterval(renewal);
      for (const t of retryTimers) clearTimeout(t);
      for (const w of workers.values()) w.abort.abort(new Error("shutting down"));
      await pumping;
      // Including any a pump that was under way claimed (aborted as they started).
      await Promise.all([...workers.values()].map((w) => w.done));
      await query("webhook-release-all", RELEASE_ALL, [owner]).catch(() => {});
    },
  };
}
