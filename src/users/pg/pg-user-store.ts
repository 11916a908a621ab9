/**
 * The UserStore on PostgreSQL: reads on the raw pg pool (./user-reads.ts), writes through MikroORM
 * (./user-writes.ts), bulk imports in batches (./import-batch.ts). Only src/app/features.ts builds it.
 */
import type pg from "pg";
import type { Orm } from "../../db/orm.ts";
import { applyPatch, markDeleted, markPasswordChanged, markUndeleted, statusOf, type User } from "../user.ts";
import type { CompactUser } from "../user-cache.columns.ts";
import type { TokensRevokedHook, UserStore } from "../user-store.ts";
import { insertImportBatch } from "./import-batch.ts";
import { createUserReads } from "./user-reads.ts";
import { createUserWrites, liveWithEtag, notFound } from "./user-writes.ts";

/** The store, and the read the cache warms from. */
export interface PgUserStore extends UserStore {
  /** Up to `limit` users after `afterId` in id order, in the cache's terms. */
  warmBatch(afterId: string, limit: number): Promise<CompactUser[]>;
}

/** Builds the store. `onTokensRevoked` runs in a write's transaction when it kills the user's tokens. */
export function createPgUserStore(deps: { orm: Orm; pool: pg.Pool; onTokensRevoked: TokensRevokedHook }): PgUserStore {
  const reads = createUserReads(deps.pool);
  const writes = createUserWrites(deps.orm, deps.pool, { onTokensRevoked: deps.onTokensRevoked });

  return {
    findById: reads.findById,
    findByIds: reads.findByIds,
    list: reads.list,
    stream: reads.stream,
    snapshot: reads.snapshot,
    warmBatch: reads.warmBatch,
    hasAdmin: writes.hasAdmin,
    create: writes.create,

    async status(id: string) {
      return statusOf(await reads.findById(id));
    },

    update: (id, patch, etag) =>
      writes.transition(id, {
        type: "updated",
        check: liveWithEtag(id, etag),
        apply: (user, now) => applyPatch(user, patch, now),
      }),

    delete: (id, etag) => writes.transition(id, { type: "deleted", check: liveWithEtag(id, etag), apply: markDeleted }),

    async undelete(id: string): Promise<User> {
      const existing = await reads.findById(id);
      if (!existing) throw notFound(id);
      if (existing.state !== "deleted") return existing;
      return writes.transition(id, { type: "undeleted", apply: markUndeleted });
    },

    importBatch: (users) => insertImportBatch(deps.pool, users),

    lockStatus: writes.lockStatus,
    findByEmailWithHash: writes.findByEmailWithHash,
    findByIdWithHash: writes.findByIdWithHash,
    replaceHash: writes.replaceHash,
    setPassword: (id, passwordHash) =>
      writes.transition(id, { type: "updated", apply: markPasswordChanged, passwordHash }),
  };
}
