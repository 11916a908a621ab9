/**
 * Values interceptors hand to handlers through Connect's context values.
 */
import { createContextKey } from "@connectrpc/connect";

/** The authenticated caller of a call, as read from a verified access token. */
export interface Caller {
  readonly userId: string;
  readonly admin: boolean;
  /** Token id (`jti`). */
  readonly tokenId: string;
  /** Token issue time, in milliseconds. */
  readonly issuedAtMs: number;
  /** Token expiry, in milliseconds: streams end with UNAUTHENTICATED then. */
  readonly expiresAtMs: number;
  /** The session the token belongs to (absent for an API key). */
  readonly sessionId?: string;
  /** The API key the call was made with (absent for a JWT). */
  readonly apiKeyId?: string;
  /** An admin's SetPassword asked for a new password: only methods that allow it may be called. */
  readonly passwordChangeRequired?: boolean;
}

/** The caller; undefined on public methods. */
export const kCaller = createContextKey<Caller | undefined>(undefined, { description: "caller" });

/** The address of the peer that sent the call (the TCP peer; see the rate limiter for proxies). */
export const kClientAddress = createContextKey<string>("", { description: "client address" });

/** The request id (from `x-request-id`, or generated), also echoed in the response header. */
export const kRequestId = createContextKey<string>("", { description: "request id" });
