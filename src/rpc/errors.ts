/**
 * Domain errors and the one table that maps them to status codes and ErrorInfo reasons. Features throw
 * ServiceError; wire-error.ts turns everything into a ConnectError with an ErrorInfo detail (the errors
 * interceptor for calls that reach a handler, the transport for those that do not), so callers always get
 * a reason they can switch on.
 */
import { pathToString } from "@bufbuild/protobuf/reflect";
import type { Violation } from "@bufbuild/protovalidate";
import { Code } from "@connectrpc/connect";

/** The ErrorInfo domain of every error this service returns. */
export const ERROR_DOMAIN = "user-service.example.com";

/** Every reason of the contract, with the status code it travels with. */
export const reasons = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  INVALID_FILTER: Code.InvalidArgument,
  INVALID_ORDER_BY: Code.InvalidArgument,
  INVALID_PAGE_TOKEN: Code.InvalidArgument,
  WEAK_PASSWORD: Code.InvalidArgument,
  INVALID_CODE: Code.InvalidArgument,
  UNAUTHENTICATED: Code.Unauthenticated,
  INVALID_CREDENTIALS: Code.Unauthenticated,
  ACCOUNT_LOCKED: Code.ResourceExhausted,
  RATE_LIMITED: Code.ResourceExhausted,
  PERMISSION_DENIED: Code.PermissionDenied,
  PASSWORD_CHANGE_REQUIRED: Code.PermissionDenied,
  USER_NOT_FOUND: Code.NotFound,
  SESSION_NOT_FOUND: Code.NotFound,
  API_KEY_NOT_FOUND: Code.NotFound,
  /** A user already has the most API keys allowed (docs/api-keys.md): delete one first. */
  API_KEY_LIMIT_REACHED: Code.FailedPrecondition,
  WEBHOOK_NOT_FOUND: Code.NotFound,
  /** The most webhooks allowed exist already (docs/webhooks.md): delete one first. */
  WEBHOOK_LIMIT_REACHED: Code.FailedPrecondition,
  EMAIL_TAKEN: Code.AlreadyExists,
  ETAG_MISMATCH: Code.Aborted,
  RESUME_TOKEN_EXPIRED: Code.OutOfRange,
  SIGNUP_DISABLED: Code.PermissionDenied,
  UNAVAILABLE: Code.Unavailable,
} as const;

/** A contract reason. */
export type Reason = keyof typeof reasons;

/** One field that failed validation: dotted path (e.g. `user.email`) and what is wrong with it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** A failure the caller can act on. Its message is shown to the caller, so it never holds secrets. */
export class ServiceError extends Error {
  readonly reason: Reason;
  readonly violations: readonly FieldViolation[];
  readonly retryAfterMs: number | undefined;
  constructor(reason: Reason, message: string, opts: { violations?: FieldViolation[]; retryAfterMs?: number } = {}) {
    super(message);
    this.name = "ServiceError";
    this.reason = reason;
    this.violations = opts.violations ?? [];
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** INVALID_ARGUMENT with field violations. */
export function invalidArgument(violations: FieldViolation[]): ServiceError {
  const summary = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new ServiceError("INVALID_ARGUMENT", `invalid request: ${summary}`, { violations });
}

/** Converts protovalidate violations to our field violations. */
export function toFieldViolations(violations: readonly Violation[]): FieldViolation[] {
  return violations.map((v) => ({ field: pathToString(v.field), description: v.message }));
}
