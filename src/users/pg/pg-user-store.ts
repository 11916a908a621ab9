/**
 * The UserStore on PostgreSQL: reads (./user-reads.ts) and writes (./user-writes.ts, one statement each) on
 * the raw pg pool with prepared statements, bulk imports in batches (./import-batch.ts). The ORM is used only
 * for lockStatus, inside a session rotation's transaction. Only src/app/features.ts builds it.
 */
import type pg from "pg";
import { invalidArgument } from "../../rpc/errors.ts";
import { applyPatch, markDeleted, markEmailVerified, markPasswordChanged, markUndeleted, statusOf } from "../user.ts";
import type { CompactUser } from "../user-cache.columns.ts";
import type { RevokeSessionsSql, UserStore } from "../user-store.ts";
import { insertImportBatch } from "./import-batch.ts";
import { createUserReads } from "./user-reads.ts";
import { createUserWrites, liveWithEtag, notFound } from "./user-writes.ts";

/** The store, and the read the cache warms from. */
export interface PgUserStore extends UserStore {
  /** Up to `limit` users after `afterId` in id order, in the cache's terms. */
  warmBatch(afterId: string, limit: number): Promise<CompactUser[]>;
}

/** Builds the store. `revokeSessions` ends a user's sessions inside a write that kills the user's tokens. */
export function createPgUserStore(deps: { pool: pg.Pool; revokeSessions: RevokeSessionsSql }): PgUserStore {
  const reads = createUserReads(deps.pool);
  const writes = createUserWrites(deps.pool, { findById: reads.findById, revokeSessions: deps.revokeSessions });

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

    update: (id, patch, etag, seen, actor) =>
      writes.transition(
        id,
        { type: "updated", check: liveWithEtag(id, etag), apply: (user, now) => applyPatch(user, patch, now), actor },
        seen,
      ),

    delete: (id, etag, seen, actor) =>
      writes.transition(id, { type: "deleted", check: liveWithEtag(id, etag), apply: markDeleted, actor }, seen),

    undelete: (id, actor) =>
      writes.transition(id, {
        type: "undeleted",
        unchanged: (user) => user.state !== "deleted",
        apply: markUndeleted,
        actor,
      }),

    importBatch: (users, actor) => insertImportBatch(deps.pool, users, actor),

    lockStatus: writes.lockStatus,
    findByEmailWithHash: writes.findByEmailWithHash,
    findByIdWithHash: writes.findByIdWithHash,
    replaceHash: writes.replaceHash,
    setPassword: (id, passwordHash, changeRequired = false, actor) =>
      writes.transition(id, {
        type: "updated",
        check: (user) => {
          liveWithEtag(id, "")(user);
          if (user.kind === "service") {
            throw invalidArgument([
              { field: "password", description: "a service account has no password: it authenticates with API keys" },
            ]);
          }
        },
        apply: (user, now) => markPasswordChanged(user, now, changeRequired),
        passwordHash,
        actor,
      }),

    verifyEmail: (id, email, actor) =>
      writes.transition(id, {
        type: "updated",
        check: (user) => {
          liveWithEtag(id, "")(user);
          if (user.email.toLowerCase() !== email.toLowerCase()) throw notFound(id);
        },
        unchanged: (user) => user.emailVerified,
        apply: markEmailVerified,
        actor,
      }),
  };
}
