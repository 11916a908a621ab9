/**
 * The one place where errors become wire errors. ServiceError maps through the table in src/errors.ts; a
 * database that cannot be reached becomes UNAVAILABLE, and one that refused the request's content (a value
 * it cannot store, a constraint) INVALID_ARGUMENT with a generic message (see src/db/errors.ts); Connect's
 * own errors keep their code and gain an ErrorInfo; anything else is logged (name and SQLSTATE only, never
 * the message, which can hold SQL or values) and answered INTERNAL without details.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { classifyDatabaseError, sqlStateOf } from "../db/errors.ts";
import { connectErrorFor, ERROR_DOMAIN, type FieldViolation, ServiceError, toConnectError } from "../errors.ts";
import { normalise } from "../transport/edge-errors.ts";
import { observeStream } from "./observe-stream.ts";

/** The contract's name for a status code (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, ...). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

// Errors travel in HTTP/2 headers and trailers, which peers cap (often at 16 KB): an error that echoes a
// huge request (thousands of bad ids, mask paths, a 100 KB label key) would kill the stream instead of
// informing the caller. So message and field violations are bounded here, where every error passes.
const MAX_MESSAGE_CHARS = 1024;
const MAX_VIOLATIONS = 50;
const MAX_VIOLATION_CHARS = 256;

const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** The error with its message and field violations cut to sizes every transport can carry. */
export function bounded(err: ServiceError): ServiceError {
  const long = (v: FieldViolation) =>
    v.field.length > MAX_VIOLATION_CHARS || v.description.length > MAX_VIOLATION_CHARS;
  const small = err.message.length <= MAX_MESSAGE_CHARS && err.violations.length <= MAX_VIOLATIONS;
  if (small && !err.violations.some(long)) return err;
  const violations = err.violations
    .slice(0, MAX_VIOLATIONS)
    .map((v) => ({ field: clip(v.field, MAX_VIOLATION_CHARS), description: clip(v.description, MAX_VIOLATION_CHARS) }));
  return new ServiceError(err.reason, clip(err.message, MAX_MESSAGE_CHARS), {
    violations,
    retryAfterMs: err.retryAfterMs,
  });
}

/** A Connect error as it goes to the caller: with our ErrorInfo (reason from the code) when it has none. */
export function withErrorInfo(err: ConnectError): ConnectError {
  if (err.findDetails(ErrorInfoSchema).some((d) => d.domain === ERROR_DOMAIN)) return err;
  const withInfo = connectErrorFor(codeName(err.code), err.code, err.rawMessage, { metadata: {} });
  withInfo.details.push(...err.details);
  return withInfo;
}

/** Maps any thrown value to the ConnectError the caller sees. */
export function toWireError(err: unknown, log: Logger, method: string): ConnectError {
  if (err instanceof ServiceError) return toConnectError(bounded(err));
  // Connect's own errors, including those it raises while a handler reads a request stream (a client-stream
  // message that cannot be decoded is INVALID_ARGUMENT, not Connect's INTERNAL), as at the edge.
  if (err instanceof ConnectError) return normalise(err) ?? err;
  const failure = classifyDatabaseError(err);
  if (failure === "busy")
    return connectErrorFor(
      "UNAVAILABLE",
      Code.Unavailable,
      "no database connection came free in time (the service is busy); retry later",
    );
  if (failure === "unavailable")
    return connectErrorFor("UNAVAILABLE", Code.Unavailable, "the database is unavailable; retry later");
  const e = err as { name?: string } | undefined;
  const logged = { method, errorName: e?.name ?? typeof err, sqlState: sqlStateOf(err) };
  if (failure === "content") {
    // Not a bug of ours as far as the caller is concerned, but a value that got past validation: worth a look.
    log.warn(logged, "request refused by the database");
    return connectErrorFor(
      "INVALID_ARGUMENT",
      Code.InvalidArgument,
      "invalid request: a value cannot be stored (invalid characters, too long, or out of range)",
    );
  }
  log.error(logged, "unexpected error");
  return connectErrorFor("INTERNAL", Code.Internal, "internal error");
}

/** The interceptor; it also maps errors raised while a server stream is being read. */
export function createErrorsInterceptor(opts: { log: Logger }): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: observeStream(res.message, { mapError: (err) => toWireError(err, opts.log, method) }) };
    } catch (err) {
      throw toWireError(err, opts.log, method);
    }
  };
}
