/**
 * The one place where errors become wire errors, used by every path: the errors interceptor (calls that
 * reach a handler), the transport's fast paths and connect-node's adapter (errors raised before any
 * interceptor runs: undecodable bytes, size limits, bad headers, refusals).
 *
 * - A ServiceError maps through the reason table (errors.ts), its message and violations bounded.
 * - A database that cannot be reached becomes UNAVAILABLE; one that refused the request's content (a value it
 *   cannot store, a constraint) INVALID_ARGUMENT with a generic message (src/db/errors.ts).
 * - Connect's own errors keep their code and gain an ErrorInfo; undecodable input is INVALID_ARGUMENT, not
 *   Connect's INTERNAL.
 * - Anything else is logged (name and SQLSTATE only, never the message, which can hold SQL or values) and
 *   answered INTERNAL without details.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { classifyDatabaseError, sqlStateOf } from "../db/errors.ts";
import { ERROR_DOMAIN, type FieldViolation, type Reason, reasons, ServiceError } from "./errors.ts";

/** Builds the wire error for a reason: status code, message, ErrorInfo and the details that go with it. */
export function connectErrorFor(
  reason: Reason | string,
  code: Code,
  message: string,
  opts: { violations?: readonly FieldViolation[]; retryAfterMs?: number; metadata?: Record<string, string> } = {},
): ConnectError {
  const details: NonNullable<ConstructorParameters<typeof ConnectError>[3]> = [
    { desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN, metadata: opts.metadata ?? {} } },
  ];
  if (opts.violations && opts.violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: create(BadRequestSchema, {
        fieldViolations: opts.violations.map((v) => ({ field: v.field, description: v.description })),
      }),
    });
  }
  if (opts.retryAfterMs !== undefined) {
    details.push({ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(opts.retryAfterMs) } });
  }
  return new ConnectError(message, code, undefined, details);
}

/** The wire form of a ServiceError. */
export function toConnectError(err: ServiceError): ConnectError {
  return connectErrorFor(err.reason, reasons[err.reason], err.message, {
    violations: err.violations,
    retryAfterMs: err.retryAfterMs,
  });
}

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

const decodeFailure = /^(parse binary|parse json|cannot decode|invalid (utf-8|wire type)|premature eof)/i;

const isErrorInfo = (d: ConnectError["details"][number]) =>
  "type" in d ? d.type === ErrorInfoSchema.typeName : d.desc.typeName === ErrorInfoSchema.typeName;

/**
 * The error the caller should see instead of `err`, or undefined when `err` already carries an ErrorInfo
 * (so a transport can leave bytes it already wrote untouched). Connect's own errors gain one, with the code's
 * name as reason; undecodable input becomes INVALID_ARGUMENT.
 */
export function normalise(err: ConnectError): ConnectError | undefined {
  if (err.details.some(isErrorInfo)) return undefined;
  if (err.code === Code.Internal && decodeFailure.test(err.rawMessage)) {
    return connectErrorFor("INVALID_ARGUMENT", Code.InvalidArgument, "the request message could not be decoded");
  }
  const withInfo = connectErrorFor(codeName(err.code), err.code, err.rawMessage);
  withInfo.details.push(...err.details);
  return withInfo;
}

/** A Connect error as it goes to the caller: with an ErrorInfo, as `normalise` gives it. */
export function withErrorInfo(err: ConnectError): ConnectError {
  return normalise(err) ?? err;
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
