/**
 * The domain queries on users. Every method forks its own EntityManager, so calls never share an identity
 * map. Writes that must not race lock the row (`FOR UPDATE`) inside a transaction.
 */
import { randomUUID } from "node:crypto";
import { LockMode, raw, UniqueConstraintViolationException } from "@mikro-orm/core";
import type { EntityManager } from "@mikro-orm/postgresql";
import type pg from "pg";
import { revokeUserSessions } from "../auth/session.repository.ts";
import { appendChange, type ChangeType, snapshotOf } from "../changes/change-log.ts";
import type { Orm } from "../db/orm.ts";
import { ServiceError } from "../rpc/errors.ts";
import { type StoredRole, UserEntity, type UserRow } from "./user.entity.ts";
import { fromRecord, type UserRecord, userColumns } from "./user.record.ts";

/** Fields of a new user. */
export interface NewUser {
  email: string;
  displayName: string;
  role: StoredRole;
  labels: Record<string, string>;
  passwordHash: string | null;
}

const emailTaken = () => new ServiceError("EMAIL_TAKEN", "a user with this email already exists");
const notFound = (id: string) => new ServiceError("USER_NOT_FOUND", `user ${id} not found`);

async function translateUnique<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UniqueConstraintViolationException) throw emailTaken();
    throw err;
  }
}

/**
 * Builds the repository. Reads by id go through `pool` with prepared statements (a MikroORM fork per
 * read cost ~4x the CPU of raw pg, see docs/adr/0002-hot-read-path.md); writes go through the ORM.
 * `onWrite` hears of every committed write (to refresh caches).
 */
export function createUserRepository(orm: Orm, pool: pg.Pool, opts: { onWrite?: (row: UserRow) => void } = {}) {
  const fork = (): EntityManager => orm.em.fork() as EntityManager;
  const written = (row: UserRow): UserRow => {
    opts.onWrite?.(row);
    return row;
  };

  async function lockForWrite(em: EntityManager, id: string): Promise<UserRow> {
    const row = await em.findOne(UserEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!row) throw notFound(id);
    return row;
  }

  return {
    /** A user by id (deleted ones included), or null. */
    async findById(id: string): Promise<UserRow | null> {
      const res = await pool.query<UserRecord>({
        name: "user-by-id",
        text: `select ${userColumns} from users where id = $1`,
        values: [id],
      });
      return res.rows[0] ? fromRecord(res.rows[0]) : null;
    },

    /** Users by ids, in no particular order; missing ids are simply absent. */
    async findByIds(ids: readonly string[]): Promise<UserRow[]> {
      const res = await pool.query<UserRecord>({
        name: "users-by-ids",
        text: `select ${userColumns} from users where id = any($1::uuid[])`,
        values: [[...new Set(ids)]],
      });
      return res.rows.map(fromRecord);
    },

    /** The user that is not deleted with this email (any case), with its password hash loaded. */
    async findLiveByEmailWithHash(email: string): Promise<UserRow | null> {
      return fork().findOne(
        UserEntity,
        { deleteTime: null, [raw("lower(email)")]: email.toLowerCase() },
        { populate: ["passwordHash"] },
      );
    },

    /** A user by id with its password hash loaded, or null. */
    async findByIdWithHash(id: string): Promise<UserRow | null> {
      return fork().findOne(UserEntity, { id }, { populate: ["passwordHash"] });
    },

    /**
     * Swaps a password hash for a stronger one of the same password (bcrypt from an import to argon2id).
     * Not a change of the user resource: no version bump, no change-log event, tokens unaffected.
     */
    async replaceHash(id: string, oldHash: string, newHash: string): Promise<void> {
      await pool.query({
        name: "replace-hash",
        text: "update users set password_hash = $3 where id = $1 and password_hash = $2",
        values: [id, oldHash, newHash],
      });
    },

    /** True when at least one admin that is not deleted exists. */
    async hasAdmin(): Promise<boolean> {
      return (await fork().count(UserEntity, { role: "admin", deleteTime: null })) > 0;
    },

    /**
     * Creates a user. With `idempotency`, a second call with the same caller and request id returns the
     * user the first one created (even while the first is still committing) and creates nothing.
     */
    async create(input: NewUser, idempotency?: { callerId: string; requestId: string }): Promise<UserRow> {
      return translateUnique(async () =>
        written(
          await fork().transactional(async (em) => {
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
                if (existing) return existing;
              }
            }
            const now = new Date();
            const row = em.create(UserEntity, {
              id,
              email: input.email,
              displayName: input.displayName,
              role: input.role,
              state: "active",
              labels: input.labels,
              passwordHash: input.passwordHash,
              version: 1,
              createTime: now,
              updateTime: now,
              deleteTime: null,
              tokensValidAfter: null,
            });
            await em.flush();
            await appendChange(em, { type: "created", row });
            return row;
          }),
        ),
      );
    },

    /**
     * Applies `change` to the locked row and bumps its version. `expectedEtag` (from the caller) must match
     * the row's current one, checked under the lock so that of two concurrent writers with the same etag
     * exactly one wins.
     */
    async update(
      id: string,
      type: ChangeType,
      change: (row: UserRow, now: Date) => void,
      check: (row: UserRow) => void,
    ): Promise<UserRow> {
      return translateUnique(async () =>
        written(
          await fork().transactional(async (em) => {
            const row = await lockForWrite(em, id);
            check(row);
            const previous = snapshotOf(row);
            const revokedBefore = row.tokensValidAfter?.getTime();
            const now = new Date();
            change(row, now);
            row.version += 1;
            row.updateTime = now;
            const revoked = row.tokensValidAfter != null && row.tokensValidAfter.getTime() !== revokedBefore;
            // Every session of the user ends in this transaction (each session row locked: ADR 0013).
            if (revoked) await revokeUserSessions(em, id, now);
            await em.flush();
            await appendChange(em, {
              type,
              row,
              previous,
              revokeBefore: revoked ? (row.tokensValidAfter ?? null) : null,
            });
            return row;
          }),
        ),
      );
    },
  };
}

/** The user repository. */
export type UserRepository = ReturnType<typeof createUserRepository>;
