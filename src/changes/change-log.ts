/**
 * Appending to the change log, inside the transaction of the write it records.
 *
 * The commit-order trap: a sequence value taken at insert can commit after a larger one, so a reader that
 * has seen 12 could later see 11 appear. Rows are therefore inserted without a seq; a deferred trigger
 * assigns it during COMMIT under one advisory lock (migration Migration20261122000100), so seq order is
 * commit order and "everything after seq N" is exact, while appends are serialised only for the commit
 * itself. The trigger also sends the NOTIFY, delivered at commit; it is only a wake-up, listeners read the log.
 */
import type { EntityManager } from "@mikro-orm/postgresql";

/** The kinds of change. */
export type ChangeType = "created" | "updated" | "deleted" | "undeleted";

/** The channel NOTIFY wakes listeners on. */
export const CHANGE_CHANNEL = "user_changes";

/**
 * The user as recorded in the log (JSON): every field a watcher sees, never the password hash. This is the
 * log's own format, kept by rows already written; src/users/user.snapshot.ts converts users to and from it.
 */
export interface UserSnapshot {
  id: string;
  email: string;
  displayName: string;
  role: "user" | "admin";
  state: "active" | "suspended" | "deleted";
  labels: Record<string, string>;
  version: number;
  /** Instants as ISO 8601 (`toISOString`). */
  createTime: string;
  updateTime: string;
  deleteTime: string | null;
  /** Access tokens issued before this instant are dead (internal: never sent to callers). */
  tokensValidAfter: string | null;
}

/** One change to append. */
export interface NewChange {
  type: ChangeType;
  /** The user after the change. */
  snapshot: UserSnapshot;
  /** The user before it; absent for a creation. */
  previous?: UserSnapshot;
  /** Set when the change kills the user's tokens issued before this instant. */
  revokeBefore?: Date | null;
}

/** Appends one change in the write's transaction (its seq is assigned when the transaction commits). */
export async function appendChange(em: EntityManager, change: NewChange): Promise<void> {
  await em.execute(
    "insert into user_changes (user_id, type, snapshot, previous, revoke_before) values (?, ?, ?::jsonb, ?::jsonb, ?)",
    [
      change.snapshot.id,
      change.type,
      JSON.stringify(change.snapshot),
      change.previous ? JSON.stringify(change.previous) : null,
      change.revokeBefore ?? null,
    ],
  );
}
