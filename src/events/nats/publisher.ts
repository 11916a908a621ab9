/**
 * Publishes every event (src/events/event-log.ts) to the JetStream stream USER_EVENTS, exactly once and in
 * seq order (docs/nats.md). Every replica runs one; the one holding the lease (./publisher-lease.ts)
 * publishes:
 *
 * - on taking the lease, and after any failed publish, it reconciles: reads the stream's last sequence and
 *   the seq header of the last event in it, and moves the cursor there when the stream is ahead (a publisher
 *   killed after its acks but before saving its cursor), so nothing already in the stream is sent again, even
 *   after the duplicate window has passed;
 * - it publishes the events after the cursor in windows, each message expecting the stream's last sequence
 *   to be the one before it (Nats-Expected-Last-Sequence). A stale publisher (a paused replica whose lease
 *   was taken over) is refused by the stream instead of appending twice or out of order, and a failed
 *   message makes every later one in its window fail too, so the stream never skips an event;
 * - `Nats-Msg-Id` is the event id: within the duplicate window a retried ambiguous publish is acknowledged
 *   as a duplicate, not stored again;
 * - the cursor moves to the last acknowledged event after each window.
 *
 * NATS or PostgreSQL away: nothing is lost (the events are in PostgreSQL); it retries with backoff and
 * resumes from the cursor, logging once per outage. It never throws out of its loop.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type pg from "pg";
import type { Logger } from "pino";
import { eventTime, type OutboundEvent, readEvents } from "../event-log.ts";
import { createPublisherLease, eventIdAt } from "./publisher-lease.ts";
import { ensureStream, STREAM, streamPosition, toMessage } from "./stream.ts";

/** The publisher's row in event_publishers. */
export const NATS_PUBLISHER = "nats";

/** What the publisher reports, for metrics. */
export interface PublisherObserver {
  /** An event was stored in the stream (or found there as a duplicate). */
  published(type: string): void;
  /** A publish failed: `unavailable` (no answer: NATS away or slow) or `refused` (the stream said no). */
  failed(reason: "unavailable" | "refused"): void;
  connected(up: boolean): void;
}

interface PublisherOptions {
  /** NATS_URL: one or more server URLs, comma-separated. */
  url: string;
  pool: pg.Pool;
  log: Logger;
  observer: PublisherObserver;
  /** Events read per pass. */
  batch?: number;
  /** Publishes awaiting their acks at once. */
  window?: number;
  /** The safety-net poll, besides `wake()`. */
  pollMs?: number;
  /** How long a lease lasts without renewal: how soon another replica takes over from a dead one. */
  leaseMs?: number;
  /** How long a publish waits for its ack. */
  ackTimeoutMs?: number;
}

/** The URLs as they may be logged: credentials and query strings removed. */
function redactServers(url: string): string {
  return url
    .split(",")
    .map((part) => {
      try {
        const u = new URL(part.trim());
        return `${u.protocol}//${u.username || u.password ? "***@" : ""}${u.host}`;
      } catch {
        return "(unparsable)";
      }
    })
    .join(",");
}

const MAX_BACKOFF_MS = 5000;

export function createNatsPublisher(opts: PublisherOptions) {
  const { pool, log, observer } = opts;
  const batch = opts.batch ?? 1000;
  const window = opts.window ?? 256;
  const pollMs = opts.pollMs ?? 1000;
  const ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
  const servers = redactServers(opts.url);
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const lease = createPublisherLease({ pool, name: NATS_PUBLISHER, owner, ttlMs: opts.leaseMs ?? 15_000 });

  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let jsm: JetStreamManager | undefined;
  let natsUp = false;
  let stopping = false;
  // Set once the stream is ensured and the cursor reconciled with it, for the lease now held; cleared by
  // anything that may have moved the stream behind our back (a failed publish, a lost lease, a reconnect).
  let reconciled = false;
  // The stream's last sequence, as this publisher knows it: what the next publish expects.
  let lastSequence = 0;
  let wakeUp: (() => void) | undefined;
  let woken = false;
  // The outage being logged, so each is logged once and its end too.
  let outage: "nats" | "database" | undefined;
  let backoff = 250;
  let loop: Promise<void> | undefined;

  /** Waits `ms`, or less when woken (unless `sleepThrough`), or not at all when woken meanwhile. */
  function pause(ms: number, sleepThrough = false): Promise<void> {
    if (woken && !sleepThrough) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise((done) => {
      const timer = setTimeout(finish, ms);
      function finish() {
        clearTimeout(timer);
        wakeUp = undefined;
        woken = false;
        done();
      }
      wakeUp = sleepThrough ? () => stopping && finish() : finish;
    });
  }

  function wake(): void {
    woken = true;
    wakeUp?.();
  }

  function trouble(kind: "nats" | "database", err: unknown): void {
    if (outage === kind) return;
    outage = kind;
    const e = err as { name?: string; code?: string | number; message?: string };
    // The NATS client's messages name no credentials; PostgreSQL's are left out (they may quote SQL).
    const detail =
      kind === "nats"
        ? { errorName: e?.name, reason: e?.message?.slice(0, 200) }
        : { errorName: e?.name, code: e?.code };
    const what = kind === "nats" ? "NATS is" : "the database is";
    log.warn({ servers, ...detail }, `NATS publishing paused: ${what} unavailable; events wait in PostgreSQL`);
  }

  function recovered(): void {
    if (outage) log.info({ servers }, "NATS publishing resumed");
    outage = undefined;
    backoff = 250;
  }

  async function watchStatus(c: NatsConnection): Promise<void> {
    for await (const s of c.status()) {
      if (s.type === "disconnect") {
        natsUp = false;
        observer.connected(false);
        trouble("nats", { name: "Disconnected", message: "connection to NATS lost; reconnecting" });
      } else if (s.type === "reconnect") {
        natsUp = true;
        reconciled = false;
        observer.connected(true);
        wake();
      }
    }
    // The client gave up (it reconnects forever, so only a refusal such as bad credentials ends it): the
    // next pass connects anew, with backoff.
    if (nc === c && !stopping) {
      nc = undefined;
      natsUp = false;
      observer.connected(false);
      trouble("nats", { name: "Closed", message: "the NATS connection was closed; connecting again" });
    }
  }

  async function ensureConnection(): Promise<boolean> {
    if (nc) return natsUp;
    const c = await connect({
      servers: opts.url.split(",").map((s) => s.trim()),
      name: "user-service event publisher",
      // Once connected, reconnect forever: an outage is waited out, never the end of publishing.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      timeout: 5000,
    });
    if (stopping) {
      await c.close();
      return false;
    }
    nc = c;
    natsUp = true;
    observer.connected(true);
    js = jetstream(c, { timeout: ackTimeoutMs });
    jsm = await jetstreamManager(c, { timeout: ackTimeoutMs, checkAPI: false });
    void watchStatus(c).catch(() => {});
    return true;
  }

  /** Runs `work`, logging its failure as an outage of `kind` (once) before passing it on. */
  async function attempt<T>(kind: "nats" | "database", work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      trouble(kind, err);
      throw err;
    }
  }

  /**
   * Moves the cursor up to the last event in the stream, and learns the stream's last sequence; returns the
   * cursor, or -1 when the lease was lost meanwhile.
   */
  async function reconcile(cursor: number): Promise<number> {
    const m = jsm as JetStreamManager;
    const position = await attempt("nats", async () => {
      const made = await ensureStream(m);
      if (made !== "found") log.info({ stream: STREAM }, `JetStream stream ${made}`);
      return streamPosition(m);
    });
    lastSequence = position.lastSequence;
    if (position.eventSeq <= cursor) return cursor;
    // Only this database's own event is proof the stream is ahead: after a restore from a backup older than
    // the stream (or with another deployment's stream) the seqs are reused by other events, which skipping
    // would lose; publishing from the cursor may repeat some instead, which consumers dedupe on the id.
    const id = await attempt("database", () => eventIdAt(pool, position.eventSeq));
    if (id !== position.eventId) {
      log.warn(
        { cursor, streamEventSeq: position.eventSeq },
        "the stream's last event is not this database's event at that seq; publishing from the cursor",
      );
      return cursor;
    }
    const saved = await attempt("database", async () =>
      lease.save(position.eventSeq, await eventTime(pool, position.eventSeq)),
    );
    if (!saved) return -1;
    log.info({ from: cursor, to: position.eventSeq }, "NATS cursor moved up to the last event in the stream");
    return position.eventSeq;
  }

  /**
   * Publishes `events` in order; returns how many were acknowledged (a prefix) and the first failure. A
   * failed message makes the later ones in its window fail on their expectation, so none is stored past it.
   */
  async function publishAll(events: OutboundEvent[]): Promise<{ done: number; failure?: unknown }> {
    let done = 0;
    while (done < events.length && !stopping) {
      const slice = events.slice(done, done + window);
      const expected = lastSequence;
      const acks = await Promise.allSettled(
        slice.map((e, i) => {
          const m = toMessage(e);
          return (js as JetStreamClient).publish(m.subject, m.payload, {
            msgID: e.id,
            headers: m.headers,
            expect: { lastSequence: expected + i },
          });
        }),
      );
      for (const [i, ack] of acks.entries()) {
        if (ack.status === "rejected") {
          for (const a of acks.slice(i)) if (a.status === "rejected") observer.failed(failureOf(a.reason));
          return { done, failure: ack.reason };
        }
        // A duplicate was stored before (at ack.value.seq) and the stream did not grow: the next message's
        // expectation is then one too high and it is refused, which makes the caller reconcile.
        if (!ack.value.duplicate) lastSequence = ack.value.seq;
        observer.published(slice[i].type);
        done++;
      }
    }
    return { done };
  }

  /**
   * One pass: claim, reconcile if needed, publish a batch, save the cursor. "more" when more may be waiting,
   * "standby" while another replica holds the lease or NATS is away.
   */
  async function pass(): Promise<"more" | "done" | "standby"> {
    if (!(await attempt("nats", ensureConnection))) return "standby";
    const held = await attempt("database", lease.claim);
    if (!held) {
      reconciled = false;
      recovered();
      return "standby";
    }
    let cursor = held.cursor;
    if (!reconciled) {
      cursor = await reconcile(cursor);
      if (cursor < 0) return "standby";
      reconciled = true;
    }
    const page = await attempt("database", () => readEvents(pool, { after: cursor, limit: batch }));
    const { done, failure } = await publishAll(page.events);
    const last = page.events[done - 1];
    const to = failure === undefined && done === page.events.length ? page.readTo : (last?.seq ?? cursor);
    // Acks not saved (the lease lost, the database away) are found in the stream by the next reconcile.
    if (to > cursor && !(await attempt("database", () => lease.save(to, last?.time ?? null)))) reconciled = false;
    if (failure !== undefined) {
      reconciled = false;
      // The stream moved behind this publisher's back (a stale publisher, or a duplicate): reconcile at once.
      if (failure instanceof JetStreamApiError && failure.code === JetStreamApiCodes.StreamWrongLastSequence) {
        log.info({ stream: STREAM }, "the stream's last sequence was not the expected one; reconciling");
        return "more";
      }
      trouble("nats", failure);
      throw failure;
    }
    recovered();
    return page.events.length === batch ? "more" : "done";
  }

  async function run(): Promise<void> {
    while (!stopping) {
      let next: Awaited<ReturnType<typeof pass>>;
      try {
        next = await pass();
      } catch {
        // Logged once per outage by pass(); waited out with backoff, not woken by every new event.
        await pause(backoff, true);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      // A replica on standby only watches for the lease to free up or NATS to come back, both noticed within a
      // poll: it does not claim on every new event.
      if (next === "done") await pause(pollMs);
      else if (next === "standby") await pause(pollMs, true);
    }
  }

  return {
    /** Starts publishing in the background; returns at once (NATS may be away). */
    start(): void {
      log.info({ servers }, "publishing events to NATS JetStream");
      loop = run();
    },
    /** Something new was numbered: publish it now rather than at the next poll. */
    wake,
    /** Stops after the window in flight, saving the cursor; gives the lease up; drains the connection. */
    async close(): Promise<void> {
      stopping = true;
      wake();
      await loop;
      await lease.release().catch(() => {});
      const c = nc;
      nc = undefined;
      if (c) await (natsUp ? c.drain() : c.close()).catch(() => {});
      observer.connected(false);
    },
  };
}

function failureOf(err: unknown): "unavailable" | "refused" {
  return err instanceof JetStreamApiError ? "refused" : "unavailable";
}
