/**
 * Sessions and their refresh tokens: one session row per login, tokens stored only as SHA-256 hashes.
 * Rotation marks the presented token used and issues the next one of the session; presenting a used token
 * again is taken as theft and revokes the session (OAuth 2.0 Security BCP, refresh token rotation).
 *
 * Rotation and every revocation lock the session row (`select … for update`) in the transaction that
 * changes it, and a revocation revokes the session, not token rows: a rotation racing a revocation either
 * commits first (and the revocation then covers the token it issued) or waits and sees the revocation.
 * Revocations of all of a user's sessions hold the user's row lock, which rotation share-locks first
 * (locks are always taken user, then session). See docs/adr/0013-sessions.md.
 */
import { randomUUID } from "node:crypto";
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Orm } from "../db/orm.ts";
import type { RevokeSessionsSql, UserStore } from "../users/user-store.ts";
import { RefreshTokenEntity } from "./refresh-token.entity.ts";
import type { RevokedSession } from "./revoked-sessions.ts";
import { SessionEntity, type SessionRow } from "./session.entity.ts";
import { hashRefreshToken, newRefreshToken } from "./tokens.ts";

/** Where a session is used from, kept for ListSessions. */
export interface SessionClient {
  clientAddress?: string;
  userAgent?: string;
}

/** A refresh token handed out, and the instant recorded for it (the access token's issue time). */
export interface IssuedSession {
  userId: string;
  sessionId: string;
  refreshToken: string;
  issuedAt: Date;
}

/** The outcome of presenting a refresh token. */
export type Rotation =
  | ({ ok: true } & IssuedSession)
  | { ok: false; why: "unknown" | "expired" | "revoked" }
  | { ok: false; why: "reused"; session: RevokedSession; userId: string };

/** How long sessions last. */
export interface SessionLifetimes {
  /** REFRESH_TOKEN_TTL: a session unused for this long ends. */
  refreshTokenTtlMs: number;
  /** SESSION_MAX_AGE: a session ends this long after the login, however often it is used. */
  sessionMaxAgeMs: number;
}

// User agents are free text from the caller: kept short, and without what PostgreSQL's text refuses.
export const USER_AGENT_MAX = 256;
const clientFields = (client: SessionClient) => ({
  clientAddress: client.clientAddress || null,
  userAgent: client.userAgent ? client.userAgent.replaceAll("\0", "").slice(0, USER_AGENT_MAX) : null,
});

/**
 * Revokes every live session of a user inside the statement of a user write that kills its tokens (a password
 * change, a suspension or a deletion; the user store's `RevokeSessionsSql`, wired in src/app/features.ts).
 * Joined on the written user's row, it runs holding that row's lock: rotations of the user's sessions in
 * progress have committed (they share-lock the user), later ones wait and then see the revocation.
 */
export const revokeUserSessionsSql: RevokeSessionsSql = (user, at) =>
  `update sessions set revoke_time = ${at} from ${user}
    where sessions.user_id = ${user}.id and sessions.revoke_time is null`;

/** Builds the session repository. `users` share-locks a user's row in a rotation's transaction. */
export function createSessionRepository(orm: Orm, lifetimes: SessionLifetimes, users: Pick<UserStore, "lockStatus">) {
  const fork = () => orm.em.fork() as EntityManager;
  const { refreshTokenTtlMs, sessionMaxAgeMs } = lifetimes;

  // The absolute end of a session; SESSION_MAX_AGE lowered since the login applies to it too.
  const endOf = (s: SessionRow) => Math.min(s.maxExpireTime.getTime(), s.createTime.getTime() + sessionMaxAgeMs);

  function issue(em: EntityManager, session: SessionRow, now: Date): string {
    const { token, hash } = newRefreshToken();
    em.create(RefreshTokenEntity, {
      id: randomUUID(),
      userId: session.userId,
      familyId: session.id,
      tokenHash: hash,
      createTime: now,
      expireTime: session.expireTime,
      usedTime: null,
      revokeTime: null,
    });
    return token;
  }

  /** The session and user of a refresh token, read without locking; undefined for an unknown token. */
  async function tokenOwner(em: EntityManager, tokenHash: Buffer) {
    const [token] = await em.execute<{ family_id: string; user_id: string }[]>(
      "select family_id, user_id from refresh_tokens where token_hash = ?",
      [tokenHash],
    );
    return token ? { sessionId: token.family_id, userId: token.user_id } : undefined;
  }

  /** A session, locked for this transaction. */
  async function lockSession(em: EntityManager, sessionId: string): Promise<SessionRow | undefined> {
    const lock = () => em.findOne(SessionEntity, { id: sessionId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    const session = await lock();
    if (session) return session;
    // A family started by a replica of the previous version during a rolling update has no row yet.
    await em.execute(
      `insert into sessions (id, user_id, create_time, last_refresh_time, expire_time, max_expire_time, revoke_time)
       select family_id, min(user_id::text)::uuid, min(create_time), max(create_time),
              least(max(expire_time), min(create_time) + make_interval(secs => ?::double precision / 1000)),
              min(create_time) + make_interval(secs => ?::double precision / 1000), max(revoke_time)
       from refresh_tokens where family_id = ? group by family_id
       on conflict (id) do nothing`,
      [sessionMaxAgeMs, sessionMaxAgeMs, sessionId],
    );
    return (await lock()) ?? undefined;
  }

  /** Inserts a new session and its first refresh token in `em`'s transaction. */
  async function insertSession(em: EntityManager, userId: string, client: SessionClient): Promise<IssuedSession> {
    const now = new Date();
    const maxExpireTime = new Date(now.getTime() + sessionMaxAgeMs);
    const session = em.create(SessionEntity, {
      id: randomUUID(),
      userId,
      createTime: now,
      lastRefreshTime: now,
      expireTime: new Date(Math.min(now.getTime() + refreshTokenTtlMs, maxExpireTime.getTime())),
      maxExpireTime,
      revokeTime: null,
      ...clientFields(client),
    });
    const refreshToken = issue(em, session, now);
    await em.flush();
    return { userId, sessionId: session.id, refreshToken, issuedAt: now };
  }

  return {
    /** Starts a session for a user (sign-up, a password change); returns the refresh token to hand out (never stored). */
    start(userId: string, client: SessionClient = {}): Promise<IssuedSession> {
      return fork().transactional((em) => insertSession(em, userId, client));
    },

    /**
     * Starts a session for a user who logged in with a password, only if the user is still active with the
     * tokens-valid-after instant read with that password's hash (else undefined). The user's row is
     * share-locked first. This closes the race of a Login that verified the old password while a password
     * change, reset or suspension committed: without the check the login would start its session after the
     * change's revocation, and keep it. Holding the share lock until commit, a change that comes later waits
     * for this session and then revokes it (ADR 0013's order: user, then session).
     */
    startIfStill(userId: string, read: { tokensValidAfterMs: number }, client: SessionClient = {}) {
      return fork().transactional(async (em): Promise<IssuedSession | undefined> => {
        const status = await users.lockStatus(em, userId);
        if (status?.state !== "active" || status.tokensValidAfterMs !== read.tokensValidAfterMs) return undefined;
        return insertSession(em, userId, client);
      });
    },

    /**
     * Exchanges a refresh token for the next one of its session. The user row is share-locked and the
     * session row locked before the token is read again: of two concurrent uses of one token exactly one
     * rotates and the other is a reuse, and a revocation committed while this waited is seen. The new
     * token and the session's idle expiry never pass the session's absolute end.
     */
    async rotate(token: string, client: SessionClient = {}): Promise<Rotation> {
      return fork().transactional(async (em): Promise<Rotation> => {
        const tokenHash = hashRefreshToken(token);
        const owner = await tokenOwner(em, tokenHash);
        if (!owner) return { ok: false, why: "unknown" };
        // Locks in the order every user write takes them, user then sessions (users.update, ChangePassword):
        // the other order deadlocks, as inserting the next token checks its user_id foreign key. A share lock:
        // rotations of one user do not wait for each other, and a write to the user waits for them.
        const user = await users.lockStatus(em, owner.userId);
        const session = await lockSession(em, owner.sessionId);
        if (!session) return { ok: false, why: "unknown" };
        const row = await em.findOne(RefreshTokenEntity, { tokenHash });
        if (!row) return { ok: false, why: "unknown" };
        const now = new Date();
        // row.revokeTime: a revocation by a replica of the previous version (rolling update).
        if (session.revokeTime || row.revokeTime) return { ok: false, why: "revoked" };
        if (row.usedTime) {
          session.revokeTime = now;
          await em.flush();
          const revoked = { id: session.id, lastRefreshTime: session.lastRefreshTime };
          return { ok: false, why: "reused", session: revoked, userId: session.userId };
        }
        const end = endOf(session);
        if (row.expireTime <= now || session.expireTime <= now || end <= now.getTime()) {
          return { ok: false, why: "expired" };
        }
        if (user?.state !== "active" || session.createTime.getTime() < user.tokensValidAfterMs) {
          return { ok: false, why: "revoked" };
        }
        row.usedTime = now;
        session.lastRefreshTime = now;
        session.expireTime = new Date(Math.min(now.getTime() + refreshTokenTtlMs, end));
        Object.assign(session, clientFields(client));
        const refreshToken = issue(em, session, now);
        await em.flush();
        return { ok: true, userId: session.userId, sessionId: session.id, refreshToken, issuedAt: now };
      });
    },

    /**
     * Revokes the session of a refresh token (Logout). Unknown tokens are ignored. `now` says whether this
     * call revoked it (false when it was revoked already).
     */
    async revokeSessionOf(
      token: string,
    ): Promise<{ session: RevokedSession; userId: string; now: boolean } | undefined> {
      return fork().transactional(async (em) => {
        const owner = await tokenOwner(em, hashRefreshToken(token));
        const session = owner && (await lockSession(em, owner.sessionId));
        if (!session) return undefined;
        const now = !session.revokeTime;
        session.revokeTime ??= new Date();
        await em.flush();
        return { session: { id: session.id, lastRefreshTime: session.lastRefreshTime }, userId: session.userId, now };
      });
    },
  };
}

/** The session repository. */
export type SessionRepository = ReturnType<typeof createSessionRepository>;
