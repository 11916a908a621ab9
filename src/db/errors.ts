/**
 * Sorts database errors by what the caller should do about them. Only a failure to reach the database
 * (SQLSTATE class 08, 57P01-57P03, 53300, network errors, a pool checkout timeout) is worth a retry
 * (UNAVAILABLE). An error caused by the request's content (class 22 data exceptions, class 23 integrity
 * violations, class 54 program limits such as an index row too big) will fail again however often it is
 * retried (INVALID_ARGUMENT). Anything else is a bug (INTERNAL).
 *
 * A SQLSTATE, when the error carries one, decides alone: PostgreSQL may close the connection after some
 * content errors (a protocol violation, 08P01, when a NUL reached a query's text), and the messages that
 * follow ("Connection terminated") must not turn a request that can never succeed into one clients retry.
 */

/** What kind of database failure an error is; undefined when it is not recognisably a database error. */
export type DatabaseFailure = "busy" | "unavailable" | "content" | undefined;

const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
// A SQLSTATE: five digits or upper-case letters, the first two naming one of PostgreSQL's classes (so that
// a five-letter errno such as EPIPE is not taken for one).
const sqlState = /^([0-5][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/;
// Class 08 connection exception (but 08P01, protocol violation, is something our request did), 57P01-57P03
// (admin shutdown, crash shutdown, cannot connect now), 53300 too many connections.
const unavailableStates = /^(08(?!P01)...|57P0[1-3]|53300)$/;
// Class 22 data exception, class 23 integrity constraint violation, class 54 program limit exceeded.
const contentStates = /^(22|23|54)/;
// Connection-level messages of pg and pg-pool, for errors that carry no SQLSTATE.
const connectionMessages =
  /Connection terminated|connection timeout|Client has encountered a connection error|Connection ended unexpectedly|the database system is (starting up|shutting down)/i;
/**
 * pg-pool's error when no connection of a full pool came free within the checkout timeout. The database
 * may be fine and the service merely overloaded (every connection busy), so callers are told that instead.
 */
const poolBusy = /timeout exceeded when trying to connect/i;

/** The errors of a cause chain, outermost first (bounded, in case of a cycle). */
function chain(err: unknown): { code?: unknown; message?: unknown; name?: unknown }[] {
  const out = [];
  for (let e = err, depth = 0; e && typeof e === "object" && depth <= 4; depth++) {
    out.push(e as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown });
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/** The SQLSTATE of `err` or of its causes, if any. */
export function sqlStateOf(err: unknown): string | undefined {
  for (const e of chain(err)) {
    if (typeof e.code === "string" && sqlState.test(e.code)) return e.code;
  }
  return undefined;
}

/** Sorts `err`; see the top of this file. */
export function classifyDatabaseError(err: unknown): DatabaseFailure {
  const state = sqlStateOf(err);
  if (state !== undefined) {
    if (unavailableStates.test(state)) return "unavailable";
    if (contentStates.test(state)) return "content";
    return undefined;
  }
  const errors = chain(err);
  if (errors.some((e) => typeof e.message === "string" && poolBusy.test(e.message))) return "busy";
  for (const e of errors) {
    if (typeof e.code === "string" && networkCodes.has(e.code)) return "unavailable";
    if (e.name === "ConnectionException") return "unavailable";
    if (typeof e.message === "string" && connectionMessages.test(e.message)) return "unavailable";
  }
  return undefined;
}
