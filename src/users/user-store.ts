/**
 * Where users are kept: the one interface every reader and writer of users goes through. The PostgreSQL
 * implementation is ./pg/pg-user-store.ts; ./user-cache.ts decorates any store so that findById and status
 * are served from memory. Both are chosen in src/app/features.ts; nothing else names them.
 *
 * Writes are the resource's transitions (create, update, delete, undelete, a new password). Each commits in
 * one transaction the user's row with its version bumped, the change's event in the change log and, when the
 * user's tokens die (suspension, deletion, password change), the end of every session of the user (the
 * `RevokeSessionsSql` the implementation is given, from the session repository). Every write takes an
 * optional `actor` (../rpc/actor.ts), recorded with its change; none is the system (docs/adr/0022).
 */
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Actor } from "../rpc/actor.ts";
import type { Cursor, Filter, PageRequest } from "./list/index.ts";
import type { NewUser, RoleName, User, UserPatch, UserStatus, UserWithHash } from "./user.ts";

/** A transaction of the store's database (a session rotation's), in which lockStatus share-locks a user. */
export type StoreTransaction = EntityManager;

/**
 * SQL that ends every live session of one user: a data-modifying statement that a user write runs as a CTE
 * of its own statement when it kills the user's tokens. `user` names the write's CTE returning the written
 * user's row (an `id` column; no row when the write did not happen), `at` the parameter holding the instant.
 * Joined on that row, it runs after the user's row is locked: locks go user, then sessions (ADR 0013).
 */
export type RevokeSessionsSql = (user: string, at: string) => string;

/** A CreateUser retry key: the same caller and request id create at most one user. */
export interface IdempotencyKey {
  callerId: string;
  requestId: string;
}

/** One page of a listing: the parsed request, where it starts, and how many users at most. */
export interface PageQuery {
  request: PageRequest;
  after: Cursor | null;
  size: number;
  /** The total_size already reported on the walk's first page (from its page token), or null to count. */
  total: number | null;
}

/** A page, where the next one starts (null: this is the last), and how many users match in all (see PageQuery.total). */
export interface Page {
  users: User[];
  next: Cursor | null;
  total: number;
}

/** Users of a consistent snapshot, and the change-log position (seq) the snapshot reflects. */
export interface SnapshotPage {
  seq: number;
  users: User[];
  /**
   * The ids of change-log rows committed but not yet numbered when the snapshot was taken: the users
   * reflect them, yet they will get seqs above `seq`. A watcher skips them (the same list on every page).
   */
  unsequenced: readonly number[];
  /** The PostgreSQL snapshot the users were read in (`pg_snapshot` text): resume tokens name it while needed. */
  snapshot: string;
}

/** One row of a bulk import, already valid and hashed. */
export interface ImportedUser {
  id: string;
  email: string;
  displayName: string;
  role: RoleName;
  labels: Record<string, string>;
  passwordHash: string;
}

/** What the auth service, the token check and sessions need of users. */
export interface UserCredentials {
  /** The auth facts of a user (deleted ones included), or null when there is none: the check of every call. */
  status(id: string): Promise<UserStatus | null>;
  /**
   * Share-locks the user's row in `tx` and returns its status, or null when there is none: a write to the
   * user waits for `tx`, and `tx` waits for a write in progress (sessions lock user, then session: ADR 0013).
   */
  lockStatus(tx: StoreTransaction, id: string): Promise<UserStatus | null>;
  /** The user that is not deleted with this email (any case), with its password hash. */
  findByEmailWithHash(email: string): Promise<UserWithHash | null>;
  /** A user by id (deleted ones included) with its password hash, or null. */
  findByIdWithHash(id: string): Promise<UserWithHash | null>;
  /**
   * Swaps a password hash for a stronger one of the same password (bcrypt from an import to argon2id), if
   * the user still has `oldHash`. Not a change of the user resource: no version bump, no change-log event.
   */
  replaceHash(id: string, oldHash: string, newHash: string): Promise<void>;
  /**
   * Gives a user that is not deleted (else USER_NOT_FOUND) a new password hash and revokes every token and
   * session it had. `changeRequired` (an admin's SetPassword) restricts its new tokens until it changes the
   * password itself; otherwise the restriction is lifted. A service account has no password: INVALID_ARGUMENT.
   */
  setPassword(id: string, passwordHash: string, changeRequired?: boolean, actor?: Actor): Promise<User>;
  /**
   * Marks the email of a user that is not deleted verified, if it is still `email` (any case); throws
   * USER_NOT_FOUND otherwise (the address the code was sent to is not the user's any more).
   */
  verifyEmail(id: string, email: string, actor?: Actor): Promise<User>;
}

/** The users. Writes throw ServiceError USER_NOT_FOUND, EMAIL_TAKEN or ETAG_MISMATCH. */
export interface UserStore extends UserCredentials {
  /** A user by id (deleted ones included), or null. */
  findById(id: string): Promise<User | null>;
  /** Users by ids, in no particular order; missing ids are simply absent. */
  findByIds(ids: readonly string[]): Promise<User[]>;
  /** One page of the users matching a request, in its order, by keyset. */
  list(query: PageQuery): Promise<Page>;
  /**
   * Every matching user exactly once, in id order, in batches, one query at a time (memory stays flat).
   * When `signal` aborts before the end, throws its reason (the caller decides what a cut-short stream means).
   */
  stream(query: { filter: Filter | null; showDeleted: boolean }, signal: AbortSignal): AsyncGenerator<User[]>;
  /**
   * The users that are not deleted and match `filter`, in id order, in batches, all from one snapshot, each
   * batch with the change-log position of that snapshot. Yields at least once (an empty batch for none).
   */
  snapshot(filter: Filter | null): AsyncGenerator<SnapshotPage>;
  /** True when at least one admin that is not deleted exists. */
  hasAdmin(): Promise<boolean>;
  /** Creates a user (active, version 1). With `idempotency`, a retry returns the first one's user. */
  create(input: NewUser, idempotency?: IdempotencyKey, actor?: Actor): Promise<User>;
  /**
   * Updates a user that is not deleted; `etag` ("" for any) must be its current one. `seen` is the user as a
   * cache holds it: the store may write from it instead of reading the user first. The write changes the row
   * only at `seen`'s version, so a stale copy costs a read and a retry, never a lost update or a wrong error.
   */
  update(id: string, patch: UserPatch, etag: string, seen?: User, actor?: Actor): Promise<User>;
  /** Soft-deletes a user that is not deleted; `etag` ("" for any) must be its current one. `seen` as for update. */
  delete(id: string, etag: string, seen?: User, actor?: Actor): Promise<User>;
  /** Restores a soft-deleted user; a user that is not deleted is returned as it is. */
  undelete(id: string, actor?: Actor): Promise<User>;
  /** Inserts a batch of new users in one transaction, skipping emails already taken; returns the ids created. */
  importBatch(users: readonly ImportedUser[], actor?: Actor): Promise<Set<string>>;
}
