/**
 * What the own paths (unary.ts, server-stream.ts) share: their settings, which are the Connect router's,
 * and the errors they raise themselves.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Admit } from "../../rpc/admit.ts";
import { connectErrorFor } from "../../rpc/wire-error.ts";

/** Settings shared with the Connect router. */
export interface DriverOptions {
  interceptors: Interceptor[];
  readMaxBytes: number;
  /**
   * Aborted when the server gives up waiting for calls at shutdown: every call still running is answered
   * at once with the reason (UNAVAILABLE), so its client retries elsewhere instead of seeing its stream
   * reset when the connections close.
   */
  shutdownSignal?: AbortSignal;
  /** Checked before a call's body is read (rate limits); its error is the answer. */
  admit?: Admit;
}

// Passed to context.abort() when a call is over: a reason avoids constructing a DOMException per call.
export const CALL_DONE = new ConnectError("call complete", Code.Canceled);

export const cancelledByClient = () => new ConnectError("the client cancelled the call", Code.Canceled);

/** A body over the limit, whose reading stopped before its size was known. */
export const bodyTooLarge = (max: number) =>
  connectErrorFor("RESOURCE_EXHAUSTED", Code.ResourceExhausted, `message is larger than the limit ${max}`);
