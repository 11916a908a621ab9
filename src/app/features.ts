/**
 * The features over an open database: the change feed, users (store, cache, list queries, the change
 * watch, the history), sessions and tokens, credentials (codes, API keys), auth events, and the services
 * that expose them, and the outbound delivery of events (webhooks, NATS). Built in dependency order; every part that holds a connection or a timer is pushed on
 * `releases`. Key material is in ./keys.ts, the API key registry in ./api-keys.ts, the auth event recorder
 * in ./auth-events.ts.
 */
import type { Validator } from "@bufbuild/protovalidate";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { createAdminCredentials } from "../auth/admin-credentials.service.ts";
import { createApiKeyService } from "../auth/api-keys.service.ts";
import { createAuthService } from "../auth/auth.service.ts";
import { createAuthEventPageTokens, createAuthEventService } from "../auth/auth-events.service.ts";
import { createCallerVerifier, standingOf, type TokenStanding } from "../auth/caller-verifier.ts";
import { createCodeRedemption } from "../auth/code-redemption.service.ts";
import { createLoginLockout } from "../auth/lockout.ts";
import { createOneTimeCodes } from "../auth/one-time-codes.ts";
import { createRevokedSessions } from "../auth/revoked-sessions.ts";
import { createSessionHandlers } from "../auth/session.handlers.ts";
import { createSessionRepository, revokeUserSessionsSql } from "../auth/session.repository.ts";
import { createSessionPageTokens } from "../auth/session-page-token.ts";
import type { SigningKeys } from "../auth/signing-keys.ts";
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
import { startApiKeys } from "./api-keys.ts";
import { startAuthEvents } from "./auth-events.ts";
import type { Database } from "./database.ts";
import { createKeys } from "./keys.ts";
import { startNatsPublisher } from "./nats.ts";
import type { Releases } from "./releases.ts";
import { startWebhooks } from "./webhooks.ts";

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
  const { rows: apiKeyRows, registry: apiKeys } = await startApiKeys(config, { log, pool, metrics, releases });

  const { signingKeys, derivedKey, accessTokens } = createKeys(config);

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

  const events = startAuthEvents(config, { ...deps, feed });

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
  // Outbound delivery of every user change and auth event, in one order (docs/adr/0024-event-delivery.md).
  const webhooks = startWebhooks(config, { ...deps, feed, derivedKey });
  await startNatsPublisher(config, { ...deps, feed });
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
      router.service(WebhookService, webhooks);
    },
    warm: () => users.warm(),
  };
}
