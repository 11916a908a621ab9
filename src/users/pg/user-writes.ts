/**
 * The writes of the PostgreSQL user store, through MikroORM (docs/adr/0004). Every method forks its own
 * EntityManager, so calls never share an identity map. A transition locks the row (`FOR UPDATE`) in a
 * transaction, applies the domain's change to it (../user.ts), bumps the version, ends the user's sessions
 * when its tokens die (the `onTokensRevoked` hook, in the same transaction: ADR 0013) and appends the change
 * to the change log, all committed together.
 */
import { randomUUID } from "node:crypto";
import { LockMode, raw, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type pg from "pg";
import { appendChange, type ChangeType } from "../../changes/change-log.ts";
import type { Orm } from "../../db/orm.ts";
import { ServiceError } from "../../rpc/errors.ts";
import { UserEntity } from "../user.entity.ts";
import { assignToEntity, userFromEntity, userWithHashFromEntity } from "../user.record.ts";
import { snapshotOf } from "../user.snapshot.ts";
import { etagOf, type NewUser, newUser, type User, type UserStatus, type UserWithHash } from "../user.ts";
import type { IdempotencyKey, StoreTransaction, TokensRevokedHook } from "../user-store.ts";

const emailTaken = () => new ServiceError("EMAIL_TAKEN", "a user with this email already exists");
/** USER_NOT_FOUND. */
export const notFound = (id: string) => new ServiceError("USER_NOT_FOUND", `user ${id} not found`);

async function translateUnique<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException) throw emailTaken();
    throw err;
  }
}

/** A change to a user: what it is, a check of the user as it is (under the lock), and the change itself. */
export interface Transition {
  type: ChangeType;
  check?: (user: User) => void;
  apply: (user: User, now: Date) => void;
  /** A new password hash to store with it. */
  passwordHash?: string;
}

/** Throws unless the user is not deleted and `etag` ("" for any) is its current one. */
export function liveWithEtag(id: string, etag: string): (user: User) => void {
  return (user) => {
    if (user.state === "deleted") throw notFound(id);
    if (etag !== "" && etag !== etagOf(user)) {
      throw new ServiceError("ETAG_MISMATCH", "the user was changed since this etag was read; read it again and retry");
    }
  };
}

/** Builds the writes. */
export function createUserWrites(orm: Orm, pool: pg.Pool, hooks: { onTokensRevoked: TokensRevokedHook }) {
  const fork = (): EntityManager => orm.em.fork() as EntityManager;

  return {
    /**
     * Applies a transition to the locked row and bumps its version. The check runs under the lock, so of two
     * concurrent writers with the same etag exactly one wins.
     */
    async transition(id: string, t: Transition): Promise<User> {
      return translateUnique(() =>
        fork().transactional(async (em) => {
          const row = await em.findOne(UserEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
          if (!row) throw notFound(id);
          const user = userFromEntity(row);
          t.check?.(user);
          const previous = snapshotOf(user);
          const revokedBefore = user.tokensValidAfter?.getTime();
          const now = new Date();
          t.apply(user, now);
          user.version += 1;
          user.updateTime = now;
          assignToEntity(row, user);
          if (t.passwordHash !== undefined) row.passwordHash = t.passwordHash;
          const revoked = user.tokensValidAfter != null && user.tokensValidAfter.getTime() !== revokedBefore;
          // Every session of the user ends in this transaction (each session row locked: ADR 0013).
          if (revoked) await hooks.onTokensRevoked(em, id, now);
          await em.flush();
          await appendChange(em, {
            type: t.type,
            snapshot: snapshotOf(user),
            previous,
            revokeBefore: revoked ? user.tokensValidAfter : null,
          });
          return user;
        }),
      );
    },

    /**
     * Creates a user. With `idempotency`, a second call with the same caller and request id returns the
     * user the first one created (even while the first is still committing) and creates nothing.
     */
    async create(input: NewUser, idempotency?: IdempotencyKey): Promise<User> {
      return translateUnique(() =>
        fork().transactional(async (em) => {
          const id = randomUUID();
          if (idempotency) {
            // Claim the key first: a concurrent retry blocks on it until this transaction ends, then finds it.
            const claimed = await em.execute<{ user_id: string }[]>(
              `insert into idempotency_keys (caller_id, request_id, user_id) values (?, ?, ?)
               on conflict do nothing returning user_id`,
              [idempotency.callerId, idempotency.requestId, id],
            );
            if (claimed.length === 0) {
              const prior = await em.execute<{ user_id: string }[]>(
                "select user_id from idempotency_keys where caller_id = ? and request_id = ?",
                [idempotency.callerId, idempotency.requestId],
              );
              const existing = prior[0] ? await em.findOne(UserEntity, { id: prior[0].user_id }) : null;
              if (existing) return userFromEntity(existing);
            }
          }
          const user = newUser(id, input, new Date());
          em.create(UserEntity, { ...user, passwordHash: input.passwordHash });
          await em.flush();
          await appendChange(em, { type: "created", snapshot: snapshotOf(user) });
          return user;
        }),
      );
    },

    async findByEmailWithHash(email: string): Promise<UserWithHash | null> {
      const row = await fork().findOne(
        UserEntity,
        { deleteTime: null, [raw("lower(email)")]: email.toLowerCase() },
        { populate: ["passwordHash"] },
      );
      return row ? userWithHashFromEntity(row) : null;
    },

    async findByIdWithHash(id: string): Promise<UserWithHash | null> {
      const row = await fork().findOne(UserEntity, { id }, { populate: ["passwordHash"] });
      return row ? userWithHashFromEntity(row) : null;
    },

    async lockStatus(tx: StoreTransaction, id: string): Promise<UserStatus | null> {
      const row = await tx.findOne(
        UserEntity,
        { id },
        { fields: ["role", "state", "tokensValidAfter"], lockMode: LockMode.PESSIMISTIC_READ },
      );
      return row
        ? { role: row.role, state: row.state, tokensValidAfterMs: row.tokensValidAfter?.getTime() ?? 0 }
        : null;
    },

    async replaceHash(id: string, oldHash: string, newHash: string): Promise<void> {
      await pool.query({
        name: "replace-hash",
        text: "update users set password_hash = $3 where id = $1 and password_hash = $2",
        values: [id, oldHash, newHash],
      });
    },

    async hasAdmin(): Promise<boolean> {
      return (await fork().count(UserEntity, { role: "admin", deleteTime: null })) > 0;
    },
  };
}
