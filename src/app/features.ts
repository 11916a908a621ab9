/**
 * The features over an open database: the change feed, users (store, cache, list queries, the change
 * watch), sessions and tokens, and the services that expose them. Built in dependency order; every part
 * that holds a connection or a timer is pushed on `releases`.
 */
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Validator } from "@bufbuild/protovalidate";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { createAdminCredentials } from "../auth/admin-credentials.service.ts";
import { createApiKeyRepository } from "../auth/api-key.repository.ts";
import { createApiKeyRegistry } from "../auth/api-key-registry.ts";
import { createApiKeyService } from "../auth/api-keys.service.ts";
import { createAuthService } from "../auth/auth.service.ts";
import {
  AUTH_EVENT_TYPES,
  type AuthEventRecorder,
  createAuthEventRecorder,
  DROP_REASONS,
  noAuthEvents,
} from "../auth/auth-event-recorder.ts";
import { createAuthEventPageTokens, createAuthEventService } from "../auth/auth-events.service.ts";
import { createCallerVerifier, standingOf, type TokenStanding } from "../auth/caller-verifier.ts";
import { createCodeRedemption } from "../auth/code-redemption.service.ts";
import { createLoginLockout } from "../auth/lockout.ts";
import { createOneTimeCodes } from "../auth/one-time-codes.ts";
import { createRevokedSessions } from "../auth/revoked-sessions.ts";
import { createSessionHandlers } from "../auth/session.handlers.ts";
import { createSessionRepository, revokeUserSessionsSql } from "../auth/session.repository.ts";
import { createSessionPageTokens } from "../auth/session-page-token.ts";
import { asymmetricKeys, type SigningKeys, symmetricKeys } from "../auth/signing-keys.ts";
import { createAccessTokens } from "../auth/tokens.ts";
import { createUserSessions } from "../auth/user-sessions.ts";
import { type ChangeFeed, createChangeFeed } from "../changes/change-feed.ts";
import type { Config } from "../config.ts";
import type { TokenVerifier } from "../interceptors/auth.ts";
import type { Metrics } from "../ops/metrics.ts";
import { configurePasswordHashing, hashQueueLength } from "../passwords/passwords.ts";
import { ensureAdmin } from "../users/admin-bootstrap.ts";
import { createListUserChanges } from "../users/history/history.service.ts";
import { createHistoryPageTokens } from "../users/history/history-page-token.ts";
import { createPageTokenCodec } from "../users/list/index.ts";
import { createPgUserStore } from "../users/pg/pg-user-store.ts";
import { createUserService } from "../users/user.service.ts";
import { withUserCache } from "../users/user-cache.ts";
import { createWatchUsers } from "../users/watch/watch-users.ts";
import type { Database } from "./database.ts";
import type { Releases } from "./releases.ts";

/** The features of a running service, as the server assembly needs them. */
export interface Features {
  readonly feed: ChangeFeed;
  readonly signingKeys: SigningKeys;
  /** Verifies a bearer token (the auth interceptor's check). */
  readonly verifyCaller: TokenVerifier;
  /** Registers the user and auth services on a router. */
  routes(router: ConnectRouter): void;
  /** Loads users into memory before the server listens; returns how many. */
  warm(): Promise<number>;
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

/**
 * The auth event recorder (docs/adr/0023-auth-events.md): buffered, written in batches, written out on
 * shutdown before the pool closes (its release step runs before the database's).
 */
function startAuthEvents(
  config: Config,
  deps: { log: Logger; db: Database; metrics: Metrics; releases: Releases },
): AuthEventRecorder {
  if (!config.authEvents) return noAuthEvents;
  const { metrics } = deps;
  const recorded = metrics.registerCounter(
    "auth_events_recorded_total",
    "Auth events written to the database, by type.",
    "type",
    AUTH_EVENT_TYPES.map((t) => t.toLowerCase()),
  );
  const dropped = metrics.registerCounter(
    "auth_events_dropped_total",
    "Auth events lost, by why: full (the buffer overflowed while the database was away), refused, closed.",
    "why",
    DROP_REASONS,
  );
  const events = createAuthEventRecorder({
    pool: deps.db.pool,
    log: deps.log,
    everyMs: config.authEventsFlushMs,
    onRecorded: (type, n) => recorded(type.toLowerCase(), n),
    onDropped: dropped,
  });
  metrics.registerGauge("auth_events_buffered", "Auth events waiting to be written.", events.buffered);
  deps.releases.push("auth events", () => events.close());
  return events;
}

export async function startFeatures(
  config: Config,
  deps: { log: Logger; db: Database; metrics: Metrics; validator: Validator; releases: Releases },
): Promise<Features> {
  const { log, db, metrics, releases } = deps;
  const { orm, pool } = db;
  const feed = createChangeFeed({ url: db.url, log });
  releases.push("change feed", () => feed.close());
  await feed.start();

  // The users: PostgreSQL, with GetUser and the auth check served from memory (docs/adr/0007). A write that
  // kills a user's tokens ends its sessions in the write's own statement (ADR 0013, ADR 0015).
  const pgUsers = createPgUserStore({ pool, revokeSessions: revokeUserSessionsSql });
  const users = withUserCache(pgUsers, { feed, max: config.userCacheSize, warmBatch: pgUsers.warmBatch });
  metrics.registerGauge("user_cache_entries", "Users held in the in-memory user cache.", users.size);

  const sessions = createSessionRepository(orm, config, users);
  // Revoked sessions, for as long as their access tokens can live (plus a margin: ADR 0013).
  const revokedSessions = createRevokedSessions({ pool, keepMs: config.accessTokenTtlMs + 5_000, log });
  await revokedSessions.start();
  releases.push("revoked sessions", async () => revokedSessions.close());
  // Live API keys, in memory like the revocations (docs/adr/0019-api-keys.md).
  const apiKeyRows = createApiKeyRepository(pool);
  const apiKeyPolls = metrics.registerCounter(
    "api_key_polls_total",
    "Reads of changed API keys, by why: load (start, or after an outage), interval, or miss (an unknown secret).",
    "why",
    ["load", "interval", "miss"],
  );
  const apiKeys = createApiKeyRegistry({
    keys: apiKeyRows,
    log,
    lastUsedEveryMs: config.apiKeyLastUsedIntervalMs,
    onPoll: (why) => apiKeyPolls(why, 1),
  });
  await apiKeys.start();
  metrics.registerGauge("api_keys_live", "API keys held in memory (not deleted).", apiKeys.size);
  releases.push("api keys", () => apiKeys.close());

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
  metrics.registerGauge("password_hash_queue", "Password hashes waiting for a hashing thread.", hashQueueLength);
  const admin = await ensureAdmin(users, {
    email: config.adminEmail,
    password: config.adminPassword,
    dataDir: config.dataDir,
  });
  // The generated password itself is never logged: the file holding it is named instead.
  if (admin?.passwordFile) log.warn(admin, `created admin ${admin.email}; its password is in ${admin.passwordFile}`);
  else if (admin) log.info({ email: admin.email }, "created admin");

  const events = startAuthEvents(config, deps);

  // ListSessions, RevokeSession, ListUserSessions, RevokeUserSessions (docs/adr/0020).
  const sessionHandlers = createSessionHandlers({
    sessions: createUserSessions(orm, config, users),
    revokedSessions,
    pageTokens: createSessionPageTokens(derivedKey("session-page-tokens")),
    users,
    events,
  });

  const standing: TokenStanding = { users, revokedSessions, apiKeys };
  const lockout = createLoginLockout(pool);
  // Password reset and email verification codes, kept as HMACs under a key of their own (docs/adr/0021).
  const codes = createOneTimeCodes({ pool, key: derivedKey("one-time-codes"), ttlMs: config.resetCodeTtlMs });
  return {
    feed,
    signingKeys,
    verifyCaller: createCallerVerifier({ ...standing, accessTokens }),
    routes(router) {
      router.service(UserService, {
        ...createUserService({
          users,
          validator: deps.validator,
          pageTokens: createPageTokenCodec(derivedKey("page-tokens")),
          watch: createWatchUsers({
            feed,
            pool,
            users,
            standing: (caller) => standingOf(caller, standing),
            heartbeatMs: config.watchHeartbeatMs,
            maxBacklog: config.watchMaxBacklog,
          }),
          // ListUserChanges: the change log as history (docs/adr/0022).
          history: createListUserChanges({
            pool,
            pageTokens: createHistoryPageTokens(derivedKey("user-change-page-tokens")),
          }),
        }),
        ...sessionHandlers.user,
        ...createAdminCredentials({ users, codes, events }),
        ...createApiKeyService({ keys: apiKeyRows, registry: apiKeys, users, events }),
      });
      router.service(AuthService, {
        ...createAuthService({
          users,
          sessions,
          accessTokens,
          lockout,
          revokedSessions,
          allowSignup: config.allowSignup,
          events,
        }),
        ...sessionHandlers.auth,
        ...createCodeRedemption({ users, codes, lockout, events }),
        ...createAuthEventService({
          pool,
          pageTokens: createAuthEventPageTokens(derivedKey("auth-event-page-tokens")),
        }),
      });
    },
    warm: () => users.warm(),
  };
}
