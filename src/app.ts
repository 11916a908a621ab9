/**
 * Composition root of a running service: database (embedded unless DATABASE_URL), migrations, bootstrap
 * admin, services, interceptors and the listener. `startApp` is what main.ts runs and what tests start on
 * port 0, so tests exercise the very same server.
 */
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError, type ConnectRouter, type ConnectRouterOptions } from "@connectrpc/connect";
import type { Logger } from "pino";
import { AuthService } from "../gen/auth/v1/auth_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { UserService } from "../gen/user/v1/user_service_pb.js";
import { createAuthService } from "./auth/auth.service.ts";
import { createCallerVerifier } from "./auth/caller-verifier.ts";
import { createJwksRoute } from "./auth/jwks.ts";
import { createLoginLockout } from "./auth/lockout.ts";
import { createRevokedSessions } from "./auth/revoked-sessions.ts";
import { createSessionRepository } from "./auth/session.repository.ts";
import { asymmetricKeys, symmetricKeys } from "./auth/signing-keys.ts";
import { createAccessTokens } from "./auth/tokens.ts";
import { createChangeFeed } from "./changes/change-feed.ts";
import type { Config } from "./config.ts";
import { startEmbeddedPostgres } from "./db/embedded-postgres.ts";
import { createOrm, migrate, migrationsApplied, type Orm } from "./db/orm.ts";
import { createPgPool } from "./db/pool.ts";
import { createAuthInterceptor } from "./interceptors/auth.ts";
import { createErrorsInterceptor } from "./interceptors/errors.ts";
import { createLoggingInterceptor } from "./interceptors/logging.ts";
import { createMetricsInterceptor } from "./interceptors/metrics.ts";
import { createRateLimits, limits } from "./interceptors/rate-limit.ts";
import { createValidationInterceptor } from "./interceptors/validation.ts";
import { createLogger } from "./logger.ts";
import { createHealthService, startHealth } from "./ops/health.ts";
import { createMetrics, createMetricsRoute, pgPoolStats } from "./ops/metrics.ts";
import { pruneStatements } from "./ops/prune-statements.ts";
import { startPruner } from "./ops/pruner.ts";
import { reflectionServices, registerReflection } from "./ops/reflection.ts";
import { startTracing } from "./ops/tracing.ts";
import { configurePasswordHashing, hashQueueLength } from "./passwords/passwords.ts";
import { strictUtf8 } from "./rpc/strict-utf8.ts";
import { createRpcHandler } from "./transport/rpc-handler.ts";
import { type HttpRoute, listen } from "./transport/server.ts";
import { ensureAdmin } from "./users/admin-bootstrap.ts";
import { createUserRepository } from "./users/user.repository.ts";
import { createUserService } from "./users/user.service.ts";
import { createUserCache } from "./users/user-cache.ts";
import { createUserQueries } from "./users/user-queries.ts";
import { createWatchUsers } from "./users/watch/watch-users.ts";
import { createStaticRoute } from "./web/static-route.ts";

/** A running service. */
export interface App {
  readonly port: number;
  readonly url: string;
  readonly orm: Orm;
  readonly log: Logger;
  /** Graceful shutdown: stop accepting, let calls finish (up to SHUTDOWN_GRACE), close the database. */
  close(): Promise<void>;
}

/** Options that are not configuration: where logs go. */
export interface AppOptions {
  log?: Logger;
}

/** Reads JWT_SECRET, or outside production generates one and keeps it under DATA_DIR. */
function jwtSecretFor(config: Config): string {
  if (config.jwtSecret) return config.jwtSecret;
  const file = join(resolve(config.dataDir), "jwt-secret");
  if (!existsSync(file)) {
    mkdirSync(resolve(config.dataDir), { recursive: true });
    writeFileSync(file, randomBytes(48).toString("base64url"), { mode: 0o600 });
  }
  return readFileSync(file, "utf8").trim();
}

/** How long each shutdown step may take (see `release` in startApp). */
const RELEASE_STEP_MS = 10_000;

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error("timeout")), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the service. */
export async function startApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const log = opts.log ?? createLogger(config.logLevel);
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir, (m) => log.info(m));
  const databaseUrl = config.databaseUrl ?? (embedded?.url as string);
  // What to release, last acquired first: on close, and when start-up fails half-way (a port already in
  // use must not leave the embedded PostgreSQL running).
  // Each step gets RELEASE_STEP_MS: a step that hangs (a pool waiting for a connection that is never given
  // back) is logged by name and skipped, so shutdown always completes.
  // (Stopping the embedded PostgreSQL gets longer: left running, it would hold its port and data directory.)
  const releases: [name: string, step: () => unknown, ms?: number][] = [];
  const release = async () => {
    for (const [name, step, ms = RELEASE_STEP_MS] of releases.splice(0).reverse())
      await withTimeout(Promise.resolve().then(step), ms).catch((err: unknown) => {
        if (err instanceof Error && err.message === "timeout")
          log.warn({ step: name, ms }, "shutdown step did not finish; going on without it");
      });
  };
  if (embedded) releases.push(["embedded PostgreSQL", () => embedded.stop(), 120_000]);
  try {
    const orm: Orm = await createOrm(databaseUrl, config.dbPoolMax);
    releases.push(["ORM pool", () => orm.close(true)]);
    const applied = await migrate(orm);
    if (applied.length > 0) log.info({ migrations: applied }, "migrations applied");

    const pool = createPgPool(databaseUrl, config.dbPoolMax);
    releases.push(["query pool", () => pool.end()]);
    const feed = createChangeFeed({ url: databaseUrl, log });
    releases.push(["change feed", () => feed.close()]);
    await feed.start();
    const users = createUserRepository(orm, pool, {
      onWrite: (row) => {
        cache.forget(row.id);
        void feed.poke();
      },
    });
    const cache = createUserCache({ load: users.findById, isCurrent: feed.isCurrent, max: config.userCacheSize });
    feed.subscribe(cache.apply);
    const sessions = createSessionRepository(orm, config);
    // Revoked sessions, for as long as their access tokens can live (plus a margin: ADR 0013).
    const revokedSessions = createRevokedSessions({ pool, keepMs: config.accessTokenTtlMs + 5_000, log });
    await revokedSessions.start();
    releases.push(["revoked sessions", async () => revokedSessions.close()]);
    // HS256 with the shared secret unless a private key is configured (then no secret is read or generated).
    const signingKeys = config.jwtPrivateKey
      ? asymmetricKeys(config.jwtPrivateKey, config.jwtPreviousPublicKeys)
      : symmetricKeys(jwtSecretFor(config));
    // Keys for other purposes (page tokens) derive from the token key material, so replicas agree on them.
    const derivedKey = (purpose: string) =>
      createHmac("sha256", config.jwtPrivateKey?.export({ format: "der", type: "pkcs8" }) ?? jwtSecretFor(config))
        .update(purpose)
        .digest("base64url");
    const accessTokens = createAccessTokens({
      keys: signingKeys,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      accessTokenTtlMs: config.accessTokenTtlMs,
    });
    configurePasswordHashing({
      maxWaiting: config.hashQueueMax,
      onCostlyHash: (algorithm, cost) =>
        log.warn({ algorithm, cost }, "a stored password hash costs more than is verified; set a new password"),
    });
    const admin = await ensureAdmin(users, {
      email: config.adminEmail,
      password: config.adminPassword,
      dataDir: config.dataDir,
    });
    // The generated password itself is never logged: the file holding it is named instead.
    if (admin?.passwordFile) log.warn(admin, `created admin ${admin.email}; its password is in ${admin.passwordFile}`);
    else if (admin) log.info({ email: admin.email }, "created admin");

    const databaseAnswers = async () => {
      try {
        await withTimeout(orm.em.getConnection().execute("select 1"), 1000);
        return await withTimeout(migrationsApplied(orm), 1000);
      } catch {
        return false;
      }
    };
    const health = await startHealth({
      services: [UserService.typeName, AuthService.typeName],
      probe: databaseAnswers,
    });
    releases.push(["health", () => health.shutdown()]);
    const metrics = createMetrics({
      pools: { orm: pgPoolStats(await orm.em.getConnection().getNativeClient()), queries: pgPoolStats(pool) },
    });

    metrics.registerGauge("user_cache_entries", "Users held in the in-memory user cache.", cache.size);
    metrics.registerGauge("password_hash_queue", "Password hashes waiting for a hashing thread.", hashQueueLength);
    const prunes = pruneStatements(config);
    const pruned = metrics.registerCounter(
      "pruned_rows_total",
      "Expired rows deleted by the pruner, by table.",
      "table",
      prunes.map((p) => p.table),
    );
    releases.push([
      "pruner",
      startPruner(pool, { statements: prunes, everyMs: config.pruneIntervalMs, log, onPruned: pruned }),
    ]);
    // Only when an OTLP endpoint is configured: otherwise no OpenTelemetry code is even loaded.
    const tracing = config.tracing ? await startTracing(config.tracing, log) : undefined;
    if (tracing) releases.push(["tracing", () => tracing.shutdown()]);
    const shutdown = new AbortController();
    const rateLimited = metrics.registerCounter(
      "rate_limited_total",
      "Calls refused with RATE_LIMITED, by limit (address: public methods; login: per email; change_password: per user).",
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
    releases.push(["rate-limit store", () => rateLimits.close()]);
    const { storeConnected } = rateLimits;
    if (storeConnected) {
      metrics.registerGauge("rate_limit_store_up", "1 while the rate-limit Redis answers; 0: per replica.", () =>
        storeConnected() ? 1 : 0,
      );
    }
    const validator = createValidator();
    const routes = (router: ConnectRouter) => {
      router.service(
        UserService,
        createUserService({
          users,
          cache,
          pool,
          validator,
          queries: createUserQueries({ pool, pageTokenKey: derivedKey("page-tokens") }),
          watch: createWatchUsers({
            feed,
            pool,
            cache,
            revokedSessions,
            heartbeatMs: config.watchHeartbeatMs,
            maxBacklog: config.watchMaxBacklog,
          }),
        }),
      );
      router.service(
        AuthService,
        createAuthService({
          users,
          sessions,
          accessTokens,
          lockout: createLoginLockout(pool),
          revokedSessions,
          allowSignup: config.allowSignup,
        }),
      );
      router.service(Health, createHealthService(health));
      registerReflection(router, [UserService, AuthService, Health]);
    };
    const { handle: rpc, h2Stream } = createRpcHandler(
      routes,
      {
        interceptors: [
          ...(tracing ? [tracing.interceptor] : []),
          createMetricsInterceptor(metrics),
          createLoggingInterceptor({ log }),
          createErrorsInterceptor({ log }),
          createAuthInterceptor({
            verify: createCallerVerifier({ accessTokens, cache, revokedSessions }),
            publicServices: [Health, ...reflectionServices].map((s) => s.typeName),
          }),
          createValidationInterceptor({ validator }),
          rateLimits.interceptor,
        ],
        readMaxBytes: config.maxMessageBytes,
        // Invalid UTF-8 in a JSON body is INVALID_ARGUMENT, not U+FFFD (src/interceptors/strings.ts). Connect
        // hands jsonOptions to its JSON serialization, which takes a textDecoder, though the router's type omits it.
        jsonOptions: { textDecoder: strictUtf8 } as ConnectRouterOptions["jsonOptions"],
        shutdownSignal: shutdown.signal,
        // The per-address limit of the public methods, before a request body is read.
        admit: rateLimits.admit,
      },
      config.unaryFastPath,
    );

    const httpRoutes: HttpRoute[] = [
      createJwksRoute(signingKeys),
      (req, res) => {
        if (req.url !== "/healthz") return false;
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
        return true;
      },
      async (req, res) => {
        if (req.url !== "/readyz") return false;
        // Ready: not shutting down, the change feed is listening, the database answers with every migration applied.
        const ready = closing === undefined && feed.isConnected() && (await databaseAnswers());
        res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" });
        res.end(ready ? "ready\n" : "not ready\n");
        return true;
      },
      createMetricsRoute(metrics),
      createStaticRoute(),
    ];

    // Before listening, so a replica serves reads from memory from its first call (~1 s per 100,000 users).
    const warming = performance.now();
    const warmed = await cache.warm(pool);
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
    const url = `${config.tlsCertFile ? "https" : "http"}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
    log.info({ url }, "listening");

    let closing: Promise<void> | undefined;
    return {
      port: server.port,
      url,
      orm,
      log,
      close() {
        closing ??= (async () => {
          // Not serving; no new connections; GOAWAY lets open HTTP/2 sessions finish their calls.
          health.shutdown();
          await server.stopAccepting();
          // Unary calls finish; streams may end by themselves within the grace period...
          const idle = await server.drained(config.shutdownGraceMs);
          if (!idle) {
            // ...and the rest are ended with UNAVAILABLE, given a moment to write their trailers.
            shutdown.abort(new ConnectError("the server is shutting down; retry on another replica", Code.Unavailable));
            await server.drained(500);
          }
          server.destroyConnections();
          // Every call has ended, so every span has: tracing flushes first, the database goes last.
          await release();
        })();
        return closing;
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
