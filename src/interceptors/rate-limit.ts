/**
 * Rate limits, counted by rate-limiter-flexible:
 * - per client address (an IPv6 client per /64; see client-address.ts) for the public methods, checked by
 *   `admit` before a request body is read, so a flood of public calls costs neither memory nor hashing;
 * - per email for Login, per email for the methods that take a one-time code (ResetPassword, VerifyEmail:
 *   one budget for both, of RATE_LIMIT_LOGIN_PER_MINUTE, apart from Login's so a flood of logins does not
 *   also block the reset that ends a lockout) and per user for ChangePassword, in the interceptor chain
 *   (they need the decoded message or the caller), on top of the per-address limit and before any password
 *   is hashed or code tried.
 *
 * Counters live in process memory, or with RATE_LIMIT_REDIS_URL in Redis/Valkey, shared by every replica.
 * A Redis outage fails open to the in-memory counters (the library's insurance limiter), so calls are still
 * limited, per replica, and never fail nor wait on Redis for longer than the command timeout.
 *
 * RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST keep their meaning as closely as a fixed window allows:
 * BURST calls per window of ceil(BURST / RATE) seconds, from the key's first call (defaults: 30 per 3 s).
 * The sustained rate never exceeds RATE and a burst of BURST passes at once; at a window's edge two bursts
 * can meet, the fixed-window trade-off the library makes for one atomic counter per key.
 */
import { createHash } from "node:crypto";
import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import {
  AuthService,
  type LoginRequest,
  type ResetPasswordRequest,
  type VerifyEmailRequest,
} from "../../gen/auth/v1/auth_service_pb.js";
import { Audience } from "../../gen/authz/v1/authz_pb.js";
import type { TrustedProxy } from "../config.ts";
import type { Admit, CallToAdmit } from "../rpc/admit.ts";
import { kCaller } from "../rpc/context.ts";
import { ServiceError } from "../rpc/errors.ts";
import { toConnectError } from "../rpc/wire-error.ts";
import { policyOf } from "./auth.ts";
import { createClientAddress, rateLimitKey } from "./client-address.ts";

/** Rate limit settings (see the README's configuration table). */
export interface RateLimitOptions {
  ratePerSecond: number;
  burst: number;
  loginPerMinute: number;
  changePasswordPerMinute: number;
  trustedProxies: readonly TrustedProxy[];
  /** Shared counters in Redis/Valkey; undefined: in process memory. */
  redisUrl?: string;
  /** The services whose PUBLIC methods are limited per address. */
  services: readonly DescService[];
  log: Logger;
  /** Told of every call refused, by limit (for a metric: refusals by `admit` pass no interceptor). */
  onLimited?: (limit: Limit) => void;
}

/** The limits, as named in metrics. */
export const limits = ["address", "login", "change_password", "code"] as const;
/** One of `limits`. */
export type Limit = (typeof limits)[number];

/** The rate limits of one process. */
export interface RateLimits {
  /** createRpcHandler's `admit`: the per-address limit of the public methods; RATE_LIMITED when exceeded. */
  admit: Admit;
  /** The per-account limits; goes after the auth interceptor (ChangePassword needs the caller). */
  interceptor: Interceptor;
  /** With Redis: whether it is connected now (false: counting in memory); undefined without Redis. */
  storeConnected: (() => boolean) | undefined;
  /** Disconnects from Redis. */
  close(): void;
}

/** How long a Redis command may take before the in-memory counters answer instead. */
const REDIS_COMMAND_TIMEOUT_MS = 500;

/**
 * The Redis client, and logging of its outages (one line when it goes, one when it is back). ioredis is
 * loaded only when a Redis URL is set, as OpenTelemetry is only with an endpoint: a replica without one
 * keeps its memory.
 */
async function connectRedis(url: string, log: Logger): Promise<Redis> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  let state: "connecting" | "up" | "down" = "connecting";
  let connected = false;
  const lost = (code?: string) => {
    if (state === "down") return;
    state = "down";
    log.warn({ code }, "rate-limit store (Redis) unavailable: each replica limits on its own until it is back");
  };
  redis.on("error", (err: NodeJS.ErrnoException) => lost(err.code ?? err.name));
  redis.on("close", () => state === "up" && lost());
  redis.on("ready", () => {
    log.info(`rate-limit store (Redis) ${connected ? "is back" : "connected"}: limits are shared`);
    connected = true;
    state = "up";
  });
  return redis;
}

/** Builds the limiters; with a Redis URL, connects (in the background: start-up does not wait for Redis). */
export async function createRateLimits(opts: RateLimitOptions): Promise<RateLimits> {
  const redis = opts.redisUrl ? await connectRedis(opts.redisUrl, opts.log) : undefined;
  const limiter = (name: string, points: number, duration: number) => {
    const memory = new RateLimiterMemory({ keyPrefix: name, points, duration });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `user-service:rate:${name}`,
      points,
      duration,
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
    });
  };
  const limiters = {
    address: limiter("address", opts.burst, Math.ceil(opts.burst / opts.ratePerSecond)),
    login: limiter("login", opts.loginPerMinute, 60),
    change_password: limiter("change-password", opts.changePasswordPerMinute, 60),
    code: limiter("code", opts.loginPerMinute, 60),
  };

  /** Counts one call; the retry delay when over the limit, undefined otherwise (and on a store error). */
  const exceeded = async (limit: Limit, key: string): Promise<number | undefined> => {
    try {
      await limiters[limit].consume(key);
      return undefined;
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        opts.onLimited?.(limit);
        return Math.max(1, Math.ceil(err.msBeforeNext));
      }
      opts.log.warn({ err: String(err) }, "rate limiter failed; call let through");
      return undefined;
    }
  };

  const clientAddress = createClientAddress(opts.trustedProxies);
  const publicPaths = new Set(
    opts.services.flatMap((s) =>
      s.methods.filter((m) => policyOf(m)?.audience === Audience.PUBLIC).map((m) => `/${s.typeName}/${m.name}`),
    ),
  );
  const admit = (call: CallToAdmit) => {
    if (!publicPaths.has(call.path)) return undefined;
    const key = rateLimitKey(clientAddress(call.peer, call.header("x-forwarded-for")));
    return exceeded("address", key).then((retryAfterMs) =>
      retryAfterMs === undefined
        ? undefined
        : toConnectError(
            new ServiceError("RATE_LIMITED", "too many requests from this client; slow down", { retryAfterMs }),
          ),
    );
  };

  // Hashed: emails stay out of Redis. Normalised as the lockout does, so case and NFKC variants count as one.
  const emailKey = (email: string) =>
    createHash("sha256").update(email.normalize("NFKC").toLowerCase()).digest("base64url");
  const interceptor: Interceptor = (next) => async (req) => {
    let retryAfterMs: number | undefined;
    if (req.method === AuthService.method.login && !req.stream) {
      retryAfterMs = await exceeded("login", emailKey((req.message as LoginRequest).email));
    } else if (
      (req.method === AuthService.method.resetPassword || req.method === AuthService.method.verifyEmail) &&
      !req.stream
    ) {
      retryAfterMs = await exceeded("code", emailKey((req.message as ResetPasswordRequest | VerifyEmailRequest).email));
    } else if (req.method === AuthService.method.changePassword) {
      const caller = req.contextValues.get(kCaller);
      if (caller) retryAfterMs = await exceeded("change_password", caller.userId);
    }
    if (retryAfterMs !== undefined) {
      throw new ServiceError("RATE_LIMITED", "too many attempts for this account; try again later", { retryAfterMs });
    }
    return next(req);
  };

  const close = () => {
    redis?.removeAllListeners("close"); // a shutdown is no outage
    redis?.disconnect();
  };
  const storeConnected = redis ? () => redis.status === "ready" : undefined;
  return { admit, interceptor, storeConnected, close };
}
