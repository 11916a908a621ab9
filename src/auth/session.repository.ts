/**
 * Refresh-token sessions: one family per login, stored as hashes only.
 */
import { randomUUID } from "node:crypto";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Orm } from "../db/orm.ts";
import { RefreshTokenEntity } from "./refresh-token.entity.ts";
import { newRefreshToken } from "./tokens.ts";

/** Builds the session repository. */
export function createSessionRepository(orm: Orm, refreshTokenTtlMs: number) {
  return {
    /** Starts a new session family for a user; returns the refresh token to hand out (never stored). */
    async start(userId: string): Promise<string> {
      const em = orm.em.fork() as EntityManager;
      const { token, hash } = newRefreshToken();
      const now = new Date();
      em.create(RefreshTokenEntity, {
        id: randomUUID(),
        userId,
        familyId: randomUUID(),
        tokenHash: hash,
        createTime: now,
        expireTime: new Date(now.getTime() + refreshTokenTtlMs),
        usedTime: null,
        revokeTime: null,
      });
      await em.flush();
      return token;
    },
  };
}

/** The session repository. */
export type SessionRepository = ReturnType<typeof createSessionRepository>;
