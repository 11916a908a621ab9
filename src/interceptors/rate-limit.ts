/**
 * Per-client rate limit for the public methods (sign-up, login, refresh, logout): a token bucket per client
 * address, answering RATE_LIMITED with RetryInfo. The client address is the socket's peer, or the last
 * X-Forwarded-For entry when TRUST_PROXY says a proxy in front sets it: that proxy appends the address it
 * saw, while every earlier entry is whatever the client chose to send (trusting the first would let a
 * client pick a fresh bucket per request). Buckets live in the process: a
 * deployment of N replicas behind a balancer allows up to N times the rate, which the README states.
 */
import type { Interceptor } from "@connectrpc/connect";
import { Audience } from "../../gen/authz/v1/authz_pb.js";
import { BoundedMap } from "../bounded-map.ts";
import { ServiceError } from "../errors.ts";
import { policyOf } from "./auth.ts";
import { kClientAddress } from "./context.ts";

/** Rate limit settings: sustained requests per second and burst size, per client address. */
export interface RateLimitOptions {
  ratePerSecond: number;
  burst: number;
  trustProxy: boolean;
  maxClients?: number;
}

/** The client address of a call: the peer, or the address the one trusted proxy appended. */
export function clientAddress(header: Headers, peer: string, trustProxy: boolean): string {
  if (trustProxy) {
    const last = header.get("x-forwarded-for")?.split(",").at(-1)?.trim();
    if (last) return last;
  }
  return peer;
}

/** The interceptor. */
export function createRateLimitInterceptor(opts: RateLimitOptions): Interceptor {
  const buckets = new BoundedMap<string, { tokens: number; at: number }>(opts.maxClients ?? 100_000);
  return (next) => async (req) => {
    if (policyOf(req.method)?.audience !== Audience.PUBLIC) return next(req);
    const key = clientAddress(req.header, req.contextValues.get(kClientAddress), opts.trustProxy);
    const now = performance.now();
    let b = buckets.get(key);
    if (!b) {
      b = { tokens: opts.burst, at: now };
      buckets.set(key, b);
    }
    b.tokens = Math.min(opts.burst, b.tokens + ((now - b.at) / 1000) * opts.ratePerSecond);
    b.at = now;
    if (b.tokens < 1) {
      const waitMs = ((1 - b.tokens) / opts.ratePerSecond) * 1000;
      throw new ServiceError("RATE_LIMITED", "too many requests from this client; slow down", {
        retryAfterMs: Math.ceil(waitMs),
      });
    }
    b.tokens -= 1;
    return next(req);
  };
}
