/**
 * Recognises the errors that mean "the database cannot be reached right now" (as opposed to a bad query),
 * so callers get UNAVAILABLE and retry instead of INTERNAL.
 */

const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
// SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown, crash, cannot connect now), 53300 (too many connections).
const unavailableStates = /^(08...|57P0[1-3]|53300)$/;
const messages =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly|the database system is (starting up|shutting down)/i;

/**
 * pg-pool's error when no connection of a full pool came free within the checkout timeout. The database
 * may be fine and the service merely overloaded (every connection busy), so callers are told that instead.
 */
const poolBusy = /timeout exceeded when trying to connect/i;

/** True when `err` (or its cause) is pg-pool's checkout timeout: every connection stayed busy. */
export function isPoolExhausted(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== "object" || depth > 4) return false;
  const e = err as { message?: unknown; cause?: unknown };
  if (typeof e.message === "string" && poolBusy.test(e.message)) return true;
  return isPoolExhausted(e.cause, depth + 1);
}

/** True when `err` (or its cause) says the database is unreachable. */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== "object" || depth > 4) return false;
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; name?: unknown };
  if (typeof e.code === "string" && (networkCodes.has(e.code) || unavailableStates.test(e.code))) return true;
  if (e.name === "ConnectionException") return true;
  if (typeof e.message === "string" && messages.test(e.message)) return true;
  return isDatabaseUnavailable(e.cause, depth + 1);
}
