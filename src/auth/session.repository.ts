/**
 * Refresh-token sessions: one family per login, tokens stored only as SHA-256 hashes. Rotation marks the
 * presented token used and issues the next one in the same family; presenting a used token again is
 * taken as theft and revokes the whole family (OAuth 2.0 Security BCP, refresh token rotation).
 */
import { randomUUID } from "node:crypto";
import { LockMode } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Orm } from "../db/orm.ts";
import { RefreshTokenEntity } from "./refresh-token.entity.ts";
import { hashRefreshToken, newRefreshToken } from "./tokens.ts";

/** The outcome of presenting a refresh token. */
export type Rotation =
  | { ok: true; userId: string; refreshToken: string; familyId: string }
  | { ok: false; why: "unknown" | "expired" | "revoked" }
  | { ok: false; why: "reused"; familyId: string };

/** Builds the session repository. */
export function createSessionRepository(orm: Orm, refreshTokenTtlMs: number) {
  const fork = () => orm.em.fork() as EntityManager;

  function issue(em: EntityManager, userId: string, familyId: string, now: Date): string {
    const { token, hash } = newRefreshToken();
    em.create(RefreshTokenEntity, {
      id: randomUUID(),
      userId,
      familyId,
      tokenHash: hash,
      createTime: now,
      expireTime: new Date(now.getTime() + refreshTokenTtlMs),
      usedTime: null,
      revokeTime: null,
    });
    return token;
  }

  return {
    /** Starts a new session family for a user; returns the refresh token to hand out (never stored). */
    async start(userId: string): Promise<{ refreshToken: string; familyId: string }> {
      const em = fork();
      const familyId = randomUUID();
      const refreshToken = issue(em, userId, familyId, new Date());
      await em.flush();
      return { refreshToken, familyId };
    },

    /**
     * Exchanges a refresh token for the next one of its family. The row is locked, so of two concurrent
     * uses of one token exactly one rotates and the other is a reuse.
     */
    async rotate(token: string, userIsActive: (userId: string) => Promise<boolean>): Promise<Rotation> {
      return fork().transactional(async (em): Promise<Rotation> => {
        const row = await em.findOne(
          RefreshTokenEntity,
          { tokenHash: hashRefreshToken(token) },
          { lockMode: LockMode.PESSIMISTIC_WRITE },
        );
        if (!row) return { ok: false, why: "unknown" };
        const now = new Date();
        if (row.revokeTime) return { ok: false, why: "revoked" };
        if (row.usedTime) {
          await em.nativeUpdate(RefreshTokenEntity, { familyId: row.familyId, revokeTime: null }, { revokeTime: now });
          return { ok: false, why: "reused", familyId: row.familyId };
        }
        if (row.expireTime <= now) return { ok: false, why: "expired" };
        if (!(await userIsActive(row.userId))) return { ok: false, why: "revoked" };
        row.usedTime = now;
        const next = issue(em, row.userId, row.familyId, now);
        await em.flush();
        return { ok: true, userId: row.userId, refreshToken: next, familyId: row.familyId };
      });
    },

    /** Revokes the family of a refresh token (logout); returns its id. Unknown tokens are ignored. */
    async revokeFamilyOf(token: string): Promise<string | undefined> {
      const em = fork();
      const row = await em.findOne(RefreshTokenEntity, { tokenHash: hashRefreshToken(token) });
      if (!row) return undefined;
      await em.nativeUpdate(
        RefreshTokenEntity,
        { familyId: row.familyId, revokeTime: null },
        { revokeTime: new Date() },
      );
      return row.familyId;
    },
  };
}

/** The session repository. */
export type SessionRepository = ReturnType<typeof createSessionRepository>;
