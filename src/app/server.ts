/**
 * The served surface over the features: rate limits, the interceptor chain, the RPC handler (fast paths
 * and connect-node's adapter) for the user, auth, health and reflection services, the plain HTTP routes
 * (`/healthz`, `/readyz`, `/metrics`, JWKS, the console), and the listener.
 */
import type { Validator } from "@bufbuild/protovalidate";
import type { ConnectRouter, ConnectRouterOptions } from "@connectrpc/connect";
import type { Logger } from "pino";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { createJwksRoute } from "../auth/jwks.ts";
import type { Config } from "../config.ts";
import { createRateLimits, limits } from "../interceptors/rate-limit.ts";
import { createHealthService, type HealthStatus } from "../ops/health.ts";
import { createMetricsRoute, type Metrics } from "../ops/metrics.ts";
import { reflectionServices, registerReflection } from "../ops/reflection.ts";
import type { Tracing } from "../ops/tracing.ts";
import { strictUtf8 } from "../rpc/strict-utf8.ts";
import { createRpcHandler } from "../transport/rpc-handler.ts";
import { type HttpRoute, type ListeningServer, listen } from "../transport/server.ts";
import { createStaticRoute } from "../web/static-route.ts";
import type { Database } from "./database.ts";
import type { Features } from "./features.ts";
import { interceptorChain } from "./interceptors.ts";
import type { Releases } from "./releases.ts";

export async function startServer(
  config: Config,
  deps: {
    log: Logger;
    db: Database;
    features: Features;
    metrics: Metrics;
    health: HealthStatus;
    tracing: Tracing | undefined;
    validator: Validator;
    releases: Releases;
    /** Aborted when the grace period is over: calls still running are answered with its reason. */
    shutdownSignal: AbortSignal;
    /** True once shutdown has begun (`/readyz` then says not ready). */
    closing(): boolean;
  },
): Promise<{ server: ListeningServer; url: string }> {
  const { log, db, features, metrics, releases } = deps;
  const rateLimited = metrics.registerCounter(
    "rate_limited_total",
    "Calls refused with RATE_LIMITED, by limit (address: public methods; login: per email; change_password: per user; code: ResetPassword and VerifyEmail per email).",
    "limit",
    limits,
  );
  const rateLimits = await createRateLimits({
    ratePerSecond: config.rateLimitPerSecond,
    burst: config.rateLimitBurst,
    loginPerMinute: config.rateLimitLoginPerMinute,
    changePasswordPerMinute: config.rateLimitChangePasswordPerMinute,
    trustedProxies: config.trustedProxies,
    redisUrl: config.rateLimitRedisUrl,
    services: [UserService, AuthService],
    log,
    onLimited: (limit) => rateLimited(limit, 1),
  });
  releases.push("rate-limit store", () => rateLimits.close());
  const { storeConnected } = rateLimits;
  if (storeConnected) {
    metrics.registerGauge("rate_limit_store_up", "1 while the rate-limit Redis answers; 0: per replica.", () =>
      storeConnected() ? 1 : 0,
    );
  }

  const routes = (router: ConnectRouter) => {
    features.routes(router);
    router.service(Health, createHealthService(deps.health));
    registerReflection(router, [UserService, AuthService, WebhookService, Health]);
  };
  const { handle: rpc, h2Stream } = createRpcHandler(
    routes,
    {
      interceptors: await interceptorChain({
        log,
        metrics,
        tracing: deps.tracing,
        verify: features.verifyCaller,
        publicServices: [Health, ...reflectionServices].map((s) => s.typeName),
        validator: deps.validator,
        rateLimits: rateLimits.interceptor,
        trustedProxies: config.trustedProxies,
      }),
      readMaxBytes: config.maxMessageBytes,
      // Invalid UTF-8 in a JSON body is INVALID_ARGUMENT, not U+FFFD (src/rpc/strict-utf8.ts). Connect
      // hands jsonOptions to its JSON serialization, which takes a textDecoder, though the router's type omits it.
      jsonOptions: { textDecoder: strictUtf8 } as ConnectRouterOptions["jsonOptions"],
      shutdownSignal: deps.shutdownSignal,
      // The per-address limit of the public methods, before a request body is read.
      admit: rateLimits.admit,
    },
    config.unaryFastPath,
  );

  const httpRoutes: HttpRoute[] = [
    createJwksRoute(features.signingKeys),
    (req, res) => {
      if (req.url !== "/healthz") return false;
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
      return true;
    },
    async (req, res) => {
      if (req.url !== "/readyz") return false;
      // Ready: not shutting down, the change feed is listening, the database answers with every migration applied.
      const ready = !deps.closing() && features.feed.isConnected() && (await db.answers());
      res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" });
      res.end(ready ? "ready\n" : "not ready\n");
      return true;
    },
    createMetricsRoute(metrics),
    createStaticRoute(),
  ];

  // Before listening, so a replica serves reads from memory from its first call (~1 s per 100,000 users).
  const warming = performance.now();
  const warmed = await features.warm();
  log.info({ users: warmed, ms: Math.round(performance.now() - warming) }, "user cache warmed");

  const server = await listen({
    host: config.host,
    port: config.port,
    rpc,
    h2Stream,
    routes: httpRoutes,
    corsAllowedOrigins: config.corsAllowedOrigins,
    tls:
      config.tlsCertFile && config.tlsKeyFile
        ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile }
        : undefined,
    limits: {
      maxConcurrentStreams: config.h2MaxConcurrentStreams,
      headersTimeoutMs: config.headersTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      maxConnections: config.maxConnections,
    },
  });
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `${config.tlsCertFile ? "https" : "http"}://${host}:${server.port}`;
  log.info({ url }, "listening");
  return { server, url };
}
