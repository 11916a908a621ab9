/**
 * The writes of the PostgreSQL user store, on the raw pg pool (docs/adr/0015). A transition reads the user
 * (no lock), applies the domain's change to it in TypeScript (../user.ts), and writes it with one statement
 * (./user-statements.ts) that changes the row only if its version is still the one read, appends the change
 * to the change log and, when the user's tokens die, ends its sessions: one round trip, one transaction.
 * When the version moved on, the user is read again: a given etag then no longer matches (ETAG_MISMATCH), a
 * blind write (etag "") is applied again to the newer user, and after a few lost races it takes the row lock
 * first, so it always ends.
 *
 * The credentials' reads use pg prepared statements too; only lockStatus, which joins a session rotation's
 * ORM transaction, stays on MikroORM.
 */
import { randomUUID } from "node:crypto";
import { LockMode } from "@mikro-orm/core";
import type pg from "pg";
import type { ChangeType, UserSnapshot } from "../../changes/change-log.ts";
import { sqlStateOf } from "../../db/errors.ts";
import { type Actor, SYSTEM_ACTOR } from "../../rpc/actor.ts";
import { ServiceError } from "../../rpc/errors.ts";
import { UserEntity } from "../user.entity.ts";
import { type UserRecord, userFromRecord } from "../user.record.ts";
import { changedFields, snapshotOf } from "../user.snapshot.ts";
import { etagOf, type NewUser, newUser, type User, type UserStatus, type UserWithHash } from "../user.ts";
import type { IdempotencyKey, RevokeSessionsSql, StoreTransaction } from "../user-store.ts";
import {
  adminExists,
  createStatement,
  idempotentUser,
  type Statement,
  transitionStatement,
  userForUpdate,
  userWithHashByEmail,
  userWithHashById,
} from "./user-statements.ts";

/** USER_NOT_FOUND. */
export const notFound = (id: string) => new ServiceError("USER_NOT_FOUND", `user ${id} not found`);

/** Optimistic attempts of a blind write before it locks the row. */
const OPTIMISTIC_ATTEMPTS = 3;
/** Attempts of an idempotent create whose key vanished (pruned) between its claim and the read of it. */
const CREATE_ATTEMPTS = 3;

/** The one unique index a write can break: email among users that are not deleted. */
async function translateUnique<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (sqlStateOf(err) === "23505" && (err as { constraint?: string }).constraint === "users_email_live_key") {
      throw new ServiceError("EMAIL_TAKEN", "a user with this email already exists");
    }
    throw err;
  }
}

/** A change to a user: what it is, a check of the user as read, and the change itself. */
export interface Transition {
  type: ChangeType;
  /** Throws when the change may not be made to this user (run on every read of it). */
  check?: (user: User) => void;
  /** True when there is nothing to change: the user is returned as read and nothing is written. */
  unchanged?: (user: User) => boolean;
  apply: (user: User, now: Date) => void;
  /** A new password hash to store with it. */
  passwordHash?: string;
  /** Who makes it (none: the system). */
  actor?: Actor;
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

type Queryable = Pick<pg.Pool, "query">;

/**
 * The change log's actor columns and changed fields of a change to `userId` (ACTOR_PARAMS values, in order).
 * No actor is the system; a `self` actor is the user changed.
 */
export function actorValues(
  actor: Actor | undefined,
  userId: string,
  previous: UserSnapshot | null,
  next: UserSnapshot,
): unknown[] {
  const a = actor ?? SYSTEM_ACTOR;
  return [
    a.kind,
    a.self ? userId : (a.userId ?? null),
    a.apiKeyId ?? null,
    a.clientAddress ?? null,
    a.requestId ?? null,
    changedFields(previous, next),
  ];
}

const run = <R extends pg.QueryResultRow>(db: Queryable, s: Statement, values: unknown[]) =>
  db.query<R>({ name: s.name, text: s.text, values });

const withHash = (r: UserRecord & { password_hash: string | null }): UserWithHash => ({
  ...userFromRecord(r),
  passwordHash: r.password_hash,
});

/** Builds the writes. `findById` is the store's read of a user (a prepared statement on the same pool). */
export function createUserWrites(
  pool: pg.Pool,
  deps: { findById: (id: string) => Promise<User | null>; revokeSessions: RevokeSessionsSql },
) {
  const statements = {
    plain: transitionStatement({ hash: false, revoke: null }),
    revoke: transitionStatement({ hash: false, revoke: deps.revokeSessions }),
    hash: transitionStatement({ hash: true, revoke: null }),
    hashRevoke: transitionStatement({ hash: true, revoke: deps.revokeSessions }),
    create: createStatement(false),
    createIdempotent: createStatement(true),
  };

  /**
   * Writes `t` applied to `read` if the row still has `read`'s version; returns the user written, or null
   * when the version moved on (or the row is gone).
   */
  async function write(db: Queryable, read: User, t: Transition): Promise<User | null> {
    const user: User = { ...read };
    const previous = snapshotOf(read);
    const now = new Date();
    t.apply(user, now);
    user.version = read.version + 1;
    user.updateTime = now;
    const revoked =
      user.tokensValidAfter != null && user.tokensValidAfter.getTime() !== read.tokensValidAfter?.getTime();
    const hash = t.passwordHash !== undefined;
    const statement = hash
      ? revoked
        ? statements.hashRevoke
        : statements.hash
      : revoked
        ? statements.revoke
        : statements.plain;
    const snapshot = snapshotOf(user);
    const values: unknown[] = [
      user.id,
      read.version,
      user.email,
      user.displayName,
      user.role,
      user.state,
      JSON.stringify(user.labels),
      user.version,
      user.updateTime,
      user.deleteTime,
      user.tokensValidAfter,
      user.emailVerified,
      user.passwordChangeRequired,
      t.type,
      JSON.stringify(snapshot),
      JSON.stringify(previous),
      revoked ? user.tokensValidAfter : null,
      ...actorValues(t.actor, user.id, previous, snapshot),
    ];
    if (hash) values.push(t.passwordHash);
    const res = await run(db, statement, values);
    return res.rowCount === 1 ? user : null;
  }

  /** The user as read, checked; null when there is nothing to write. */
  function checked(id: string, user: User | null, t: Transition): User | null {
    if (!user) throw notFound(id);
    t.check?.(user);
    return t.unchanged?.(user) ? null : user;
  }

  /** True when `t` has something to write to `user` and its check passes. */
  function usable(id: string, user: User, t: Transition): boolean {
    try {
      return checked(id, user, t) !== null;
    } catch {
      return false;
    }
  }

  /** The locked path: the row locked for the transaction, then the same statement (it cannot lose). */
  async function lockedTransition(id: string, t: Transition): Promise<User> {
    const client = await pool.connect();
    let open = true;
    let broken: Error | undefined;
    try {
      await client.query("begin");
      const res = await run<UserRecord>(client, userForUpdate, [id]);
      const read = res.rows[0] ? userFromRecord(res.rows[0]) : null;
      const user = checked(id, read, t);
      const written = user && (await write(client, user, t));
      await client.query("commit");
      open = false;
      if (!user) return read as User;
      if (!written) throw new Error(`user ${id}: the locked write changed no row`);
      return written;
    } finally {
      if (open) await client.query("rollback").catch((err: Error) => (broken = err));
      // A connection whose rollback failed is closed rather than pooled in a transaction.
      client.release(broken);
    }
  }

  return {
    /**
     * Applies a transition to the user and bumps its version, in one statement that commits the row, the
     * change-log event and (when the tokens die) the sessions' end together. Of two concurrent writers that
     * read the same version exactly one writes; the other reads again and runs its check on the newer user.
     */
    transition(id: string, t: Transition, seen?: User): Promise<User> {
      return translateUnique(async () => {
        // A cached copy saves the read when the change applies to it. When it does not (it may be stale:
        // deleted since undeleted, an older etag), the user is read, so a stale copy never decides an error.
        let first = seen && usable(id, seen, t) ? seen : undefined;
        for (let attempt = 0; attempt < OPTIMISTIC_ATTEMPTS; attempt++) {
          const read = first ?? (await deps.findById(id));
          first = undefined;
          const user = checked(id, read, t);
          if (!user) return read as User;
          const written = await write(pool, user, t);
          if (written) return written;
        }
        return lockedTransition(id, t);
      });
    },

    /**
     * Creates a user, in one statement. With `idempotency`, a second call with the same caller and request
     * id returns the user the first one created (even while the first is still committing: the claim waits
     * for it) and creates nothing.
     */
    create(input: NewUser, idempotency?: IdempotencyKey, actor?: Actor): Promise<User> {
      return translateUnique(async () => {
        for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
          const user = newUser(randomUUID(), input, new Date());
          const values: unknown[] = [
            user.id,
            user.email,
            user.displayName,
            user.role,
            user.state,
            JSON.stringify(user.labels),
            input.passwordHash,
            user.version,
            user.createTime,
            user.updateTime,
            user.deleteTime,
            user.tokensValidAfter,
            user.kind,
            JSON.stringify(snapshotOf(user)),
            ...actorValues(actor, user.id, null, snapshotOf(user)),
          ];
          if (!idempotency) {
            await run(pool, statements.create, values);
            return user;
          }
          values.push(idempotency.callerId, idempotency.requestId);
          const res = await run(pool, statements.createIdempotent, values);
          if (res.rowCount === 1) return user;
          const prior = await run<{ user_id: string }>(pool, idempotentUser, [
            idempotency.callerId,
            idempotency.requestId,
          ]);
          const existing = prior.rows[0] ? await deps.findById(prior.rows[0].user_id) : null;
          if (existing) return existing;
          // The key was pruned between the claim and the read: claim it again.
        }
        throw new Error("CreateUser: the request id was claimed but its user could not be read");
      });
    },

    async findByEmailWithHash(email: string): Promise<UserWithHash | null> {
      const res = await run<UserRecord & { password_hash: string | null }>(pool, userWithHashByEmail, [
        email.toLowerCase(),
      ]);
      return res.rows[0] ? withHash(res.rows[0]) : null;
    },

    async findByIdWithHash(id: string): Promise<UserWithHash | null> {
      const res = await run<UserRecord & { password_hash: string | null }>(pool, userWithHashById, [id]);
      return res.rows[0] ? withHash(res.rows[0]) : null;
    },

    async lockStatus(tx: StoreTransaction, id: string): Promise<UserStatus | null> {
      const row = await tx.findOne(
        UserEntity,
        { id },
        {
          fields: ["role", "state", "tokensValidAfter", "passwordChangeRequired"],
          lockMode: LockMode.PESSIMISTIC_READ,
        },
      );
      return row
        ? {
            role: row.role,
            state: row.state,
            tokensValidAfterMs: row.tokensValidAfter?.getTime() ?? 0,
            passwordChangeRequired: row.passwordChangeRequired,
          }
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
      return (await run<{ present: boolean }>(pool, adminExists, [])).rows[0].present;
    },
  };
}
