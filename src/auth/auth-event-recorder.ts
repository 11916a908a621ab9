/**
 * Records auth events off the request path (docs/adr/0023-auth-events.md). `record` only appends to an
 * in-memory buffer (a few µs; it never waits, never throws, never fails the call); a timer writes the buffer
 * every `everyMs`, or at once when `batch` events wait, as one multi-row INSERT (`unnest` of arrays), one
 * batch at a time. While the database is away the events stay buffered, up to `max`; beyond that the oldest
 * are dropped and counted. `close` (a release step) writes what is left before the pool closes.
 *
 * Ids are UUIDv7 made at record time (time-ordered and, within this process, strictly increasing), so a
 * batch retried after an ambiguous failure inserts nothing twice (`on conflict do nothing`), and events of
 * one instant list in the order they happened. Nothing secret is ever passed in: the handlers give the type,
 * the user, the session and (for Login and ResetPassword) the email typed; the client comes from the call.
 */
import { randomFillSync } from "node:crypto";
import type { HandlerContext } from "@connectrpc/connect";
import type pg from "pg";
import type { Logger } from "pino";
import { classifyDatabaseError } from "../db/errors.ts";
import { kClientAddress } from "../rpc/context.ts";
import { USER_AGENT_MAX } from "./session.repository.ts";

/** The AuthEventType names, without their AUTH_EVENT_TYPE_ prefix, as stored in auth_events.type. */
export const AUTH_EVENT_TYPES = [
  "LOGIN_SUCCEEDED",
  "LOGIN_FAILED",
  "ACCOUNT_LOCKED",
  "LOGOUT",
  "TOKEN_REFRESHED",
  "REFRESH_REUSE_DETECTED",
  "PASSWORD_CHANGED",
  "PASSWORD_RESET",
  "SESSION_REVOKED",
  "API_KEY_CREATED",
  "API_KEY_DELETED",
] as const;

/** What happened. */
export type AuthEventType = (typeof AUTH_EVENT_TYPES)[number];

/** Who and what an event concerns; never a password, token, code or secret. */
export interface AuthEventFacts {
  userId?: string;
  sessionId?: string;
  /** The email typed (Login, ResetPassword); bounded and cleaned here. */
  email?: string;
}

/** The parts of a call an event reads: the client address and the user agent. */
export type EventCall = Pick<HandlerContext, "values" | "requestHeader">;

/** Records events; shared by every handler that has something to record. */
export interface AuthEventRecorder {
  /** Buffers one event of `call`; returns at once. */
  record(type: AuthEventType, call: EventCall, facts?: AuthEventFacts): void;
  /** Writes what is buffered now (tests, shutdown); resolves when written or failed. */
  flush(): Promise<void>;
  /** Events waiting to be written. */
  buffered(): number;
  /** Stops the timer and writes what is left (trying for a few seconds), then drops what could not be written. */
  close(): Promise<void>;
}

/** Why events were dropped: the buffer was full (database away), refused by the database, or after close. */
export const DROP_REASONS = ["full", "refused", "closed"] as const;

export interface RecorderOptions {
  pool: pg.Pool;
  log: Logger;
  /** How often the buffer is written (ms). */
  everyMs?: number;
  /** Events per INSERT; a full batch is written at once. */
  batch?: number;
  /** Events kept while the database is away; the oldest go beyond it. */
  max?: number;
  onRecorded?: (type: AuthEventType, n: number) => void;
  /** After each batch written (the app numbers it at once for outbound delivery: docs/adr/0024). */
  onWritten?: () => void;
  onDropped?: (why: (typeof DROP_REASONS)[number], n: number) => void;
}

const EMAIL_MAX = 320;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One buffered event, as its row. */
interface Row {
  id: string;
  type: AuthEventType;
  time: Date;
  userId: string | null;
  clientAddress: string | null;
  userAgent: string | null;
  sessionId: string | null;
  email: string | null;
}

const insertSql = `
  insert into auth_events (id, type, time, user_id, client_address, user_agent, session_id, email)
  select * from unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::text[])
  on conflict (id) do nothing`;

/** Text PostgreSQL accepts (no NUL, which would fail the whole batch), bounded; null when empty. */
function clean(text: string | undefined | null, max: number): string | null {
  if (!text) return null;
  const out = text.replaceAll("\0", "").slice(0, max);
  return out === "" ? null : out;
}

const uuidOrNull = (id: string | undefined) => (id && UUID.test(id) ? id : null);

/** UUIDv7 ids, strictly increasing within the process; random bits from a pool refilled 512 ids at a time. */
export function createEventIds(): (nowMs: number) => string {
  const pool = Buffer.alloc(16 * 512);
  let used = pool.length;
  let lastMs = 0;
  let seq = 0;
  const hex: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
  return (nowMs) => {
    if (used === pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    const b = pool.subarray(used, used + 16);
    used += 16;
    // The 12-bit sequence counts ids within one millisecond; when it runs out the clock is borrowed from.
    if (nowMs > lastMs) {
      lastMs = nowMs;
      seq = 0;
    } else if (++seq > 0xfff) {
      lastMs += 1;
      seq = 0;
    }
    let ms = lastMs;
    for (let i = 5; i >= 0; i--) {
      b[i] = ms % 256;
      ms = Math.floor(ms / 256);
    }
    b[6] = 0x70 | (seq >> 8);
    b[7] = seq & 0xff;
    b[8] = 0x80 | (b[8] & 0x3f);
    let s = "";
    for (let i = 0; i < 16; i++) {
      s += hex[b[i]];
      if (i === 3 || i === 5 || i === 7 || i === 9) s += "-";
    }
    return s;
  };
}

/** Builds the recorder and starts its timer. */
export function createAuthEventRecorder(opts: RecorderOptions): AuthEventRecorder {
  const { pool, log } = opts;
  const everyMs = opts.everyMs ?? 200;
  const batch = opts.batch ?? 500;
  const max = opts.max ?? 10_000;
  const newId = createEventIds();
  let buffer: Row[] = [];
  let writing: Promise<void> | undefined;
  let soon = false;
  let failing = false;
  let closed = false;

  const timer = setInterval(() => void flush(), everyMs);
  timer.unref();

  function drop(why: (typeof DROP_REASONS)[number], n: number) {
    if (n > 0) opts.onDropped?.(why, n);
  }

  /** Inserts one batch; on a failure to reach the database puts it back in front (the oldest go first). */
  async function writeBatch(): Promise<boolean> {
    const rows = buffer.length <= batch ? buffer : buffer.slice(0, batch);
    buffer = buffer.length <= batch ? [] : buffer.slice(batch);
    try {
      await pool.query(insertSql, [
        rows.map((r) => r.id),
        rows.map((r) => r.type),
        rows.map((r) => r.time),
        rows.map((r) => r.userId),
        rows.map((r) => r.clientAddress),
        rows.map((r) => r.userAgent),
        rows.map((r) => r.sessionId),
        rows.map((r) => r.email),
      ]);
      if (failing) log.info({ buffered: buffer.length }, "auth events are written again");
      failing = false;
      const byType = new Map<AuthEventType, number>();
      for (const r of rows) byType.set(r.type, (byType.get(r.type) ?? 0) + 1);
      for (const [type, n] of byType) opts.onRecorded?.(type, n);
      opts.onWritten?.();
      return true;
    } catch (err) {
      if (classifyDatabaseError(err) === "content") {
        // Would fail again however often it is retried: dropped, so it cannot block the events after it.
        log.error({ err, events: rows.length }, "auth events refused by the database; dropped");
        drop("refused", rows.length);
        return true;
      }
      if (!failing) log.warn({ err, buffered: buffer.length + rows.length }, "cannot write auth events; keeping them");
      failing = true;
      buffer = rows.concat(buffer);
      trim();
      return false;
    }
  }

  /** Keeps at most `max` events, dropping the oldest. */
  function trim() {
    if (buffer.length <= max) return;
    const over = buffer.length - max;
    buffer = buffer.slice(over);
    drop("full", over);
  }

  async function writeAll(): Promise<void> {
    while (buffer.length > 0 && (await writeBatch())) {
      // Another full batch waits: written at once; a partial one waits for the timer.
      if (buffer.length < batch && !closed) break;
    }
  }

  /** One writer at a time: a flush while one runs waits for it. */
  function flush(): Promise<void> {
    if (writing) return writing;
    if (buffer.length === 0) return Promise.resolve();
    const running = writeAll().finally(() => {
      writing = undefined;
    });
    writing = running;
    return running;
  }

  return {
    record(type, call, facts = {}) {
      if (closed) {
        drop("closed", 1);
        return;
      }
      const time = Date.now();
      buffer.push({
        id: newId(time),
        type,
        time: new Date(time),
        userId: uuidOrNull(facts.userId),
        clientAddress: clean(call.values.get(kClientAddress), 64),
        userAgent: clean(call.requestHeader.get("user-agent"), USER_AGENT_MAX),
        sessionId: uuidOrNull(facts.sessionId),
        email: clean(facts.email, EMAIL_MAX),
      });
      if (buffer.length > max) trim();
      if (buffer.length >= batch && !writing && !soon) {
        soon = true;
        setImmediate(() => {
          soon = false;
          void flush();
        });
      }
    },
    flush,
    buffered: () => buffer.length,
    async close() {
      closed = true;
      clearInterval(timer);
      // Tries for up to 4 s (a try that is under way when it ends still finishes: the pool gives up on a
      // connection after 5 s), inside the release step's 10 s.
      const deadline = Date.now() + 4000;
      for (let first = true; (first || Date.now() < deadline) && (buffer.length > 0 || writing); first = false) {
        if (writing) await writing;
        await flush();
        if (buffer.length > 0) await new Promise((r) => setTimeout(r, 250));
      }
      if (buffer.length > 0) {
        log.error({ events: buffer.length }, "auth events could not be written before shutdown; dropped");
        drop("closed", buffer.length);
        buffer = [];
      }
    },
  };
}

/** A recorder that records nothing (AUTH_EVENTS=false: only to measure what recording costs). */
export const noAuthEvents: AuthEventRecorder = {
  record() {},
  flush: async () => {},
  buffered: () => 0,
  close: async () => {},
};
