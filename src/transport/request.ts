/**
 * Reading requests within bounds: headers as a plain record, and bodies read up to a per-call limit
 * (MAX_MESSAGE_BYTES) and under a per-connection budget. Go's net/http2 and nghttpx hold a connection's
 * unread request data to its flow-control windows; Node consumes every DATA frame as it arrives, so the
 * bodies still arriving on one HTTP/2 connection are counted here: past 16 MiB, its streams are paused, Node
 * then stops granting them flow-control window, and the client is held back until bodies complete
 * (docs/adr/0012-listener-limits.md).
 */
import type { Http2Session, IncomingHttpHeaders } from "node:http2";
import type { Readable } from "node:stream";
import { ConnectError } from "@connectrpc/connect";
import type { Admit, CallToAdmit } from "../rpc/admit.ts";
import { envelopeEnds } from "./protocols/envelope.ts";

/** Request headers as a plain record (createHandlerContext builds its one Headers object from it). */
export function requestHeaders(raw: IncomingHttpHeaders): Record<string, string> {
  const h: Record<string, string> = {};
  for (const k in raw) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = raw[k];
    if (v !== undefined) h[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return h;
}

/** Bytes of unfinished request bodies one HTTP/2 connection may hold before its streams are paused. */
export const CONNECTION_BODY_BYTES = 16 * 1024 * 1024;

/** Something reading a request body that the budget can pause and wake. */
interface BodyReader {
  resume(): void;
}

/**
 * One connection's allowance of buffered request-body bytes. The reader that started first may always go
 * on (its body completes or hits the per-call limit, freeing the budget), so the streams of a connection
 * can never all wait for each other.
 */
export interface BodyBudget {
  /** Counts `n` bytes read by `reader`; false when it must pause until the budget calls its `resume`. */
  take(reader: BodyReader, n: number): boolean;
  /** Gives back `n` of the reader's bytes (messages that were complete and handed on). */
  give(reader: BodyReader, n: number): void;
  /** The reader is done (body complete, refused or gone): gives back all it holds. */
  end(reader: BodyReader): void;
}

function createBodyBudget(max: number): BodyBudget {
  let used = 0;
  const held = new Map<BodyReader, number>();
  const paused = new Set<BodyReader>();
  const first = () => held.keys().next().value;
  const wake = () => {
    if (paused.size === 0) return;
    if (used < max) {
      const all = [...paused];
      paused.clear();
      for (const r of all) r.resume();
      return;
    }
    const head = first();
    if (head && paused.delete(head)) head.resume();
  };
  return {
    take(reader, n) {
      held.set(reader, (held.get(reader) ?? 0) + n);
      used += n;
      if (used <= max || first() === reader) return true;
      paused.add(reader);
      return false;
    },
    give(reader, n) {
      const h = held.get(reader);
      if (h === undefined) return;
      const k = Math.min(h, n);
      held.set(reader, h - k);
      used -= k;
      wake();
    },
    end(reader) {
      used -= held.get(reader) ?? 0;
      held.delete(reader);
      paused.delete(reader);
      wake();
    },
  };
}

const budgets = new WeakMap<Http2Session, BodyBudget>();

/** The body budget of an HTTP/2 session (undefined for HTTP/1.1, which reads one request at a time). */
export function budgetOf(session: Http2Session | undefined): BodyBudget | undefined {
  if (!session) return undefined;
  let budget = budgets.get(session);
  if (!budget) {
    budget = createBodyBudget(CONNECTION_BODY_BYTES);
    budgets.set(session, budget);
  }
  return budget;
}

/**
 * Reads a whole body up to `limit` bytes. Resolves undefined when it is over the limit (reading stops at
 * once: the stream is left paused, for the caller to answer and end it) or when the stream fails.
 */
export function readBody(stream: Readable, limit: number, budget?: BodyBudget): Promise<Buffer | undefined> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const reader: BodyReader = { resume: () => stream.resume() };
    const finish = (body: Buffer | undefined) => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onGone);
      stream.off("close", onGone);
      budget?.end(reader);
      done(body);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.pause();
        finish(undefined);
        return;
      }
      chunks.push(chunk);
      if (budget && !budget.take(reader, chunk.length)) stream.pause();
    };
    const onEnd = () => finish(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    const onGone = () => finish(undefined);
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("error", onGone);
    stream.once("close", onGone);
  });
}

/**
 * A request body for connect-node's adapter, read under the connection's budget. A body made of several
 * messages (`enveloped`: a client stream) gives its bytes back as each message completes; any other body
 * holds them until it ends. Unlike iterating the request directly, stopping early does not destroy the
 * request: the caller answers first, then ends the stream.
 */
export async function* budgetedBody(
  req: Readable,
  budget: BodyBudget | undefined,
  enveloped: boolean,
): AsyncGenerator<Uint8Array> {
  if (!budget) {
    yield* req.iterator({ destroyOnReturn: false });
    return;
  }
  let wake: (() => void) | undefined;
  const reader: BodyReader = { resume: () => wake?.() };
  const ends = enveloped ? envelopeEnds() : undefined;
  let unfinished = 0;
  try {
    for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (!budget.take(reader, chunk.length)) await new Promise<void>((r) => (wake = r));
      unfinished += chunk.length;
      if (ends) {
        const done = ends(chunk);
        if (done > 0) {
          budget.give(reader, unfinished - (chunk.length - done));
          unfinished = chunk.length - done;
        }
      }
      yield chunk;
    }
  } finally {
    budget.end(reader);
  }
}

/**
 * Runs `admit` (when set) and then `next` with its verdict: at once when the check answers synchronously
 * (the common case, which keeps a tick off the fast path), and with the error when the check itself fails.
 */
export function admitThen<T>(
  admit: Admit | undefined,
  call: () => CallToAdmit,
  next: (denied: ConnectError | undefined) => Promise<T>,
): Promise<T> {
  if (!admit) return next(undefined);
  let verdict: ReturnType<Admit>;
  try {
    verdict = admit(call());
  } catch (err) {
    return next(ConnectError.from(err));
  }
  return verdict instanceof Promise
    ? verdict.then(next, (err: unknown) => next(ConnectError.from(err)))
    : next(verdict);
}
