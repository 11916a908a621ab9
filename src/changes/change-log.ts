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
import type { UserRow } from "../users/user.entity.ts";

/** The kinds of change. */
export type ChangeType = "created" | "updated" | "deleted" | "undeleted";

/** The channel NOTIFY wakes listeners on. */
export const CHANGE_CHANNEL = "user_changes";

/** The user as recorded in the log: every field a watcher sees, never the password hash. */
export interface UserSnapshot {
  id: string;
  email: string;
  displayName: string;
  role: UserRow["role"];
  state: UserRow["state"];
  labels: Record<string, string>;
  version: number;
  createTime: string;
  updateTime: string;
  deleteTime: string | null;
  /** Access tokens issued before this instant are dead (internal: never sent to callers). */
  tokensValidAfter: string | null;
}

/** The snapshot of a row. */
export function snapshotOf(row: UserRow): UserSnapshot {
  return {
    id: row.id,
    email: row.email,
    displayName: row.displayName,
    role: row.role,
    state: row.state,
    labels: { ...row.labels },
    version: row.version,
    createTime: row.createTime.toISOString(),
    updateTime: row.updateTime.toISOString(),
    deleteTime: row.deleteTime ? row.deleteTime.toISOString() : null,
    tokensValidAfter: row.tokensValidAfter ? row.tokensValidAfter.toISOString() : null,
  };
}

/** Appends one change in the write's transaction (its seq is assigned when the transaction commits). */
export async function appendChange(
  em: EntityManager,
  change: { type: ChangeType; row: UserRow; previous?: UserSnapshot; revokeBefore?: Date | null },
): Promise<void> {
  await em.execute(
    "insert into user_changes (user_id, type, snapshot, previous, revoke_before) values (?, ?, ?::jsonb, ?::jsonb, ?)",
    [
      change.row.id,
      change.type,
      JSON.stringify(snapshotOf(change.row)),
      change.previous ? JSON.stringify(change.previous) : null,
      change.revokeBefore ?? null,
    ],
  );
}
