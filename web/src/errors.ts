/**
 * Turns any failed call into what a person reads: one sentence, plus the field violations of a
 * google.rpc.BadRequest keyed by the form field they belong to. Decisions are made on the ErrorInfo reason
 * (the contract), never on status codes or message text, and nothing raw (JSON, stack) is ever shown.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/** A failure, explained. */
export interface Explained {
  /** One or two sentences for people. */
  readonly message: string;
  /** The ErrorInfo reason, when the service sent one (a network failure has none). */
  readonly reason: string | undefined;
  /** Field violations by form field name (`email`, `display_name`, `labels`, `password`, ...). */
  readonly fields: ReadonlyMap<string, string>;
}

/** The ErrorInfo reason of an error, if any. */
export function reasonOf(err: unknown): string | undefined {
  return ConnectError.from(err).findDetails(ErrorInfoSchema)[0]?.reason;
}

/** `user.display_name` → `display_name`, `user.labels["x y"]` → `labels`: the name of the input to mark. */
export function fieldKey(path: string): string {
  return path.replace(/^user\./, "").split(/[.[]/)[0] ?? path;
}

function retryIn(err: ConnectError): string {
  const delay = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const seconds = delay ? Number(delay.seconds) : 0;
  if (seconds <= 0) return "in a moment";
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

const byReason: Record<string, (err: ConnectError) => string> = {
  INVALID_ARGUMENT: () => "Please correct the marked fields.",
  INVALID_CREDENTIALS: () => "Wrong email or password.",
  ACCOUNT_LOCKED: (e) => `Too many failed sign-ins for this account. Try again ${retryIn(e)}.`,
  RATE_LIMITED: (e) => `Too many requests. Try again ${retryIn(e)}.`,
  PERMISSION_DENIED: () => "You are not allowed to do that. This console needs an administrator account.",
  USER_NOT_FOUND: () => "This user no longer exists.",
  SESSION_NOT_FOUND: () => "This session has already ended.",
  API_KEY_NOT_FOUND: () => "This API key no longer exists.",
  PASSWORD_CHANGE_REQUIRED: () => "An administrator requires you to choose a new password before going on.",
  EMAIL_TAKEN: () => "Another user already has this email address.",
  WEAK_PASSWORD: () => "This password is too common (or is the email address). Please choose another.",
  ETAG_MISMATCH: () =>
    "This user was changed by someone else since you opened it. Reload to see their changes, then apply yours again.",
  // The service's message for these points at the position of the mistake, so it is worth showing.
  INVALID_FILTER: (e) => `The filter is not valid: ${e.rawMessage}`,
  INVALID_ORDER_BY: (e) => `The order is not valid: ${e.rawMessage}`,
  INVALID_PAGE_TOKEN: () => "That page is no longer valid for the current filter and order; back to the first page.",
  UNAUTHENTICATED: () => "Your session has ended. Please sign in again.",
  RESUME_TOKEN_EXPIRED: () => "The live view was away too long; the list has been reloaded.",
  UNAVAILABLE: () => "The service is unavailable right now. Try again in a moment.",
};

/** Explains an error; `apiBaseUrl` names the service when it could not be reached. */
export function explain(err: unknown, apiBaseUrl?: string): Explained {
  // The console's own refusals are plain Errors whose message is already a sentence.
  if (err instanceof Error && !(err instanceof ConnectError))
    return { message: err.message, reason: undefined, fields: new Map() };
  const e = ConnectError.from(err);
  const reason = reasonOf(e);
  const fields = new Map<string, string>();
  for (const v of e.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations)) {
    const key = fieldKey(v.field);
    fields.set(key, fields.has(key) ? `${fields.get(key)}; ${v.description}` : v.description);
  }
  if (reason === "EMAIL_TAKEN") fields.set("email", "already used by another user");
  if (reason !== undefined) return { message: (byReason[reason] ?? (() => e.rawMessage))(e), reason, fields };
  // No ErrorInfo: the call never reached the service (network, CORS, wrong address) or a proxy answered.
  const where = apiBaseUrl ? ` at ${apiBaseUrl}` : "";
  const message =
    e.code === Code.Canceled
      ? "The request was cancelled."
      : `Cannot reach the service${where}. Check the address and your connection; a service on another origin must allow this page in CORS_ALLOWED_ORIGINS.`;
  return { message, reason, fields };
}

/** True when the call's outcome is unknown (it may or may not have reached the service). */
export function outcomeUnknown(err: unknown): boolean {
  const e = ConnectError.from(err);
  return reasonOf(e) === undefined && e.code !== Code.Canceled;
}
