/**
 * A user's sessions as ListSessions, RevokeSession, ListUserSessions and RevokeUserSessions see them: the
 * live ones listed newest first by keyset, and revocation of one or all (docs/adr/0020-session-management.md).
 *
 * Live: not revoked and not past its end, the earlier of its idle expiry (`expire_time`) and its absolute
 * one (`max_expire_time`, or `create_time + SESSION_MAX_AGE` when the setting was lowered since the login:
 * `endOf` in session.repository.ts).
 *
 * Revocation follows ADR 0013: it sets `revoke_time` on the session row under that row's lock, so a rotation
 * racing it either commits first (and is covered) or waits and sees it. Revoking all of a user's sessions
 * share-locks the user's row first, as rotation does (locks go user, then session), which also makes it wait
 * for a password change or suspension in progress (they hold the user's row), and locks the sessions in id
 * order, so two of them never deadlock. The caller adds what was revoked to the revoked-sessions registry.
 */
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Orm } from "../db/orm.ts";
import type { UserStore } from "../users/user-store.ts";
import type { RevokedSession } from "./revoked-sessions.ts";
import { SessionEntity } from "./session.entity.ts";
import type { SessionLifetimes } from "./session.repository.ts";
import type { SessionCursor } from "./session-page-token.ts";

/** A session as the listings show it. */
export interface SessionView {
  id: string;
  createTime: Date;
  lastRefreshTime: Date;
  /** The earlier of its idle and its absolute expiry. */
  expireTime: Date;
  clientAddress: string;
  userAgent: string;
}

/** One page of a user's live sessions, and where the next starts (null: this was the last). */
export interface SessionPage {
  sessions: SessionView[];
  next: SessionCursor | null;
}

/** What revoking one session did. */
export interface SessionRevocation {
  /** What the revoked-sessions registry must learn; undefined when the session was revoked already. */
  revoked: RevokedSession | undefined;
  /** It was live until now (RevokeUserSessions counts it). */
  wasLive: boolean;
}

/** The end of a session (ms): as `endOf` in session.repository.ts, and never later than its idle expiry. */
const endOf = (s: { expireTime: Date; maxExpireTime: Date; createTime: Date }, maxAgeMs: number) =>
  Math.min(s.expireTime.getTime(), s.maxExpireTime.getTime(), s.createTime.getTime() + maxAgeMs);

/** The same in SQL, of the session row `t`; its one parameter is SESSION_MAX_AGE in ms. */
const endSql = (t: string) =>
  `least(${t}.expire_time, ${t}.max_expire_time, ${t}.create_time + make_interval(secs => ?::double precision / 1000))`;

/**
 * An instant of a row as epoch milliseconds: MikroORM's `execute` hands timestamps over as PostgreSQL's text,
 * which JavaScript's Date does not parse reliably, and a number is unambiguous.
 */
const msOf = (column: string) => `floor(extract(epoch from ${column}) * 1000)::float8`;
const dateOf = (ms: number | string) => new Date(Number(ms));

interface Row {
  id: string;
  create_ms: number;
  /** create_time to the microsecond, for the keyset (ISO 8601, UTC). */
  create_time_us: string;
  last_refresh_ms: number;
  end_ms: number;
  client_address: string | null;
  user_agent: string | null;
}

/** Builds the listing and revocations. `users` share-locks a user's row for revoking all its sessions. */
export function createUserSessions(orm: Orm, lifetimes: SessionLifetimes, users: Pick<UserStore, "lockStatus">) {
  const fork = () => orm.em.fork() as EntityManager;
  const maxAge = lifetimes.sessionMaxAgeMs;

  return {
    /** A page of the user's live sessions, newest first (create_time, then id, both descending). */
    async list(userId: string, after: SessionCursor | null, size: number): Promise<SessionPage> {
      // The keyset compares create_time at the microsecond PostgreSQL holds, not a JavaScript Date's ms.
      const rows = await fork().execute<Row[]>(
        `select id, client_address, user_agent, ${msOf("create_time")} as create_ms,
                ${msOf("last_refresh_time")} as last_refresh_ms, ${msOf("end_time")} as end_ms,
                to_char(create_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as create_time_us
         from (select *, ${endSql("sessions")} as end_time from sessions where user_id = ? and revoke_time is null) s
         where end_time > now() ${after ? "and (create_time, id) < (?::timestamptz, ?::uuid)" : ""}
         order by create_time desc, id desc
         limit ?`,
        [maxAge, userId, ...(after ? [after.createTime, after.id] : []), size + 1],
      );
      const more = rows.length > size;
      const page = more ? rows.slice(0, size) : rows;
      const last = page.at(-1);
      return {
        sessions: page.map((r) => ({
          id: r.id,
          createTime: dateOf(r.create_ms),
          lastRefreshTime: dateOf(r.last_refresh_ms),
          expireTime: dateOf(r.end_ms),
          clientAddress: r.client_address ?? "",
          userAgent: r.user_agent ?? "",
        })),
        next: more && last ? { createTime: last.create_time_us, id: last.id } : null,
      };
    },

    /**
     * Revokes one session of the user; undefined when the user has no session with that id (another user's
     * session is not found either). Revoking a revoked session changes nothing. An expired one is revoked
     * all the same: an access token issued just before its absolute end can outlive it.
     */
    async revoke(userId: string, sessionId: string): Promise<SessionRevocation | undefined> {
      return fork().transactional(async (em) => {
        const session = await em.findOne(
          SessionEntity,
          { id: sessionId, userId },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        if (!session) return undefined;
        if (session.revokeTime) return { revoked: undefined, wasLive: false };
        const now = new Date();
        session.revokeTime = now;
        await em.flush();
        return {
          revoked: { id: session.id, lastRefreshTime: session.lastRefreshTime },
          wasLive: endOf(session, maxAge) > now.getTime(),
        };
      });
    },

    /**
     * Revokes every session of the user not revoked yet (expired ones too, as `revoke` does); null when
     * there is no such user. Returns what was revoked, and how many of them were live.
     */
    async revokeAll(userId: string): Promise<{ revoked: RevokedSession[]; live: number } | null> {
      return fork().transactional(async (em) => {
        if (!(await users.lockStatus(em, userId))) return null;
        const now = new Date();
        const rows = await em.execute<{ id: string; last_refresh_ms: number; live: boolean }[]>(
          `update sessions s set revoke_time = ?
           from (select id from sessions where user_id = ? and revoke_time is null order by id for update) locked
           where s.id = locked.id
           returning s.id, ${msOf("s.last_refresh_time")} as last_refresh_ms, ${endSql("s")} > ? as live`,
          [now, userId, maxAge, now],
        );
        return {
          revoked: rows.map((r) => ({ id: r.id, lastRefreshTime: dateOf(r.last_refresh_ms) })),
          live: rows.filter((r) => r.live).length,
        };
      });
    },
  };
}

/** The listing and revocations. */
export type UserSessions = ReturnType<typeof createUserSessions>;
