/**
 * One delivery attempt over HTTP(S): the host resolved and checked by the SSRF guard, then the connection
 * pinned to the checked addresses (the request's `lookup` hands them back instead of asking DNS again), so a
 * name that resolves to a public address when checked and a private one a moment later (DNS rebinding)
 * cannot send the request inside. HTTPS still verifies the certificate against the URL's host name. The
 * status is all that is read: redirects are not followed (a 3xx is a failure); the body is drained unread
 * (never logged) so the connection can carry the next attempt, and a body over 64 KiB closes it instead.
 *
 * Connections are kept alive per delivery run (`connectionsFor`: one endpoint, one socket): every socket in
 * it was opened through the pinned `lookup`, so it goes to an address that was checked when it was opened,
 * and each attempt still resolves and checks the host first (a name turned private is refused). Opening a
 * connection per attempt halved the events a second one endpoint gets (bench/results/outbound.md).
 */
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { AddressRefused, hostOf, type ResolvedAddress, resolveHost } from "./address-guard.ts";

/** What made an attempt fail: the answer's status, the deadline, the network, or the SSRF guard. */
export type FailureReason = "status" | "timeout" | "network" | "blocked";
export const FAILURE_REASONS: readonly FailureReason[] = ["status", "timeout", "network", "blocked"];

/** The outcome of an attempt; `status` is 0 when the endpoint did not answer. */
export type AttemptResult =
  | { ok: true; status: number }
  | { ok: false; reason: FailureReason; status: number; error: string };

/** The request of an attempt. */
export interface Attempt {
  url: string;
  headers: Record<string, string>;
  body: string;
  allowPrivate: boolean;
  timeoutMs: number;
  /** Aborts the attempt on shutdown: the promise then rejects, and nothing is recorded for it. */
  signal: AbortSignal;
  /** The delivery run's kept-alive connection (`connectionsFor`); without it, a connection per attempt. */
  agent?: http.Agent;
}

/** At most this much of an answer's body is drained to keep its connection; more closes it. */
const MAX_DRAINED_BYTES = 64 * 1024;

/** Kept-alive connections for one delivery run to `url`'s endpoint: one socket; destroy() when the run ends. */
export function connectionsFor(url: string): http.Agent {
  const options = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 };
  return new URL(url).protocol === "https:" ? new https.Agent(options) : new http.Agent(options);
}

const USER_AGENT = "user-service-webhooks/1";

/** A `lookup` that answers with the addresses already checked. */
function pinned(addresses: ResolvedAddress[]): LookupFunction {
  return ((_host: string, options: { all?: boolean }, done: (...args: unknown[]) => void) => {
    if (options?.all) done(null, addresses);
    else done(null, addresses[0].address, addresses[0].family);
  }) as LookupFunction;
}

/** Makes one attempt. Resolves with its outcome; rejects only when `signal` aborted it. */
export async function send(attempt: Attempt): Promise<AttemptResult> {
  const url = new URL(attempt.url);
  let addresses: ResolvedAddress[];
  try {
    addresses = await resolveHost(hostOf(url), attempt.allowPrivate);
  } catch (err) {
    if (!(err instanceof AddressRefused)) throw err;
    return { ok: false, reason: err.why === "blocked" ? "blocked" : "network", status: 0, error: err.message };
  }
  attempt.signal.throwIfAborted();
  const deadline = AbortSignal.timeout(attempt.timeoutMs);
  const signal = AbortSignal.any([attempt.signal, deadline]);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: "POST",
        headers: {
          ...attempt.headers,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(attempt.body),
          "user-agent": USER_AGENT,
        },
        // Used by a new socket only: every socket of the run's agent was opened to a checked address.
        lookup: pinned(addresses),
        agent: attempt.agent ?? false,
        signal,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const outcome: AttemptResult =
          status >= 200 && status < 300
            ? { ok: true, status }
            : { ok: false, reason: "status", status, error: `the endpoint answered HTTP ${status}` };
        let drained = 0;
        res.on("data", (chunk: Buffer) => {
          drained += chunk.length;
          if (drained > MAX_DRAINED_BYTES) res.destroy();
        });
        res.on("end", () => resolve(outcome));
        // Destroyed (too long a body) or cut off after the status: the status is the answer.
        res.on("close", () => resolve(outcome));
      },
    );
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (attempt.signal.aborted) reject(attempt.signal.reason);
      else if (deadline.aborted)
        resolve({ ok: false, reason: "timeout", status: 0, error: `no answer within ${attempt.timeoutMs / 1000} s` });
      // The code only (ECONNREFUSED, CERT_HAS_EXPIRED): the message can name the address or the URL.
      else resolve({ ok: false, reason: "network", status: 0, error: `network error: ${err.code ?? err.name}` });
    });
    req.end(attempt.body);
  });
}
