/**
 * The admission check: what the transport asks of every RPC before it reads the request body (the rate
 * limiter answers it), so that a refused call costs neither memory nor a handler.
 */
import type { ConnectError } from "@connectrpc/connect";

/** A call as the admission check sees it: before its body is read. */
export interface CallToAdmit {
  /** `/package.Service/Method`. */
  path: string;
  header: (name: string) => string | undefined;
  /** The TCP peer address. */
  peer: string;
}

/** Called for every RPC before its body is read; an error returned is the call's answer (the body is never read). */
export type Admit = (call: CallToAdmit) => ConnectError | undefined | Promise<ConnectError | undefined>;
