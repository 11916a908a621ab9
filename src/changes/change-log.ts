/**
 * Appending to the change log, inside the transaction of the write it records.
 *
 * The commit-order trap: a sequence value is taken at insert, not at commit, so two concurrent writers can
 * commit out of order and a reader that has seen 12 could later see 11 appear. Here every append first
 * takes one transaction-scoped advisory lock, held until commit or rollback: appends are serialised, so the
 * seq of a later commit is always larger, and "everything after seq N" is exact. The append must be the
 * last statement of its transaction so the lock is held for the shortest time. NOTIFY is sent in the same
 * transaction, so it is delivered at commit; it is only a wake-up, listeners read the log.
 */
import type { EntityManager } from "@mikro-orm/postgresql";
import type { UserRow } from "../users/user.entity.ts";

/** The kinds of change. */
export type ChangeType = "created" | "updated" | "deleted" | "undeleted";

/** The channel NOTIFY wakes listeners on. */
export const CHANGE_CHANNEL = "user_changes";

/** Advisory lock key serialising appends ("user" in ASCII). */
export const APPEND_LOCK = 0x75736572;

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

/** Appends one change; call it last in the write's transaction. */
export async function appendChange(
  em: EntityManager,
  change: { type: ChangeType; row: UserRow; previous?: UserSnapshot; revokeBefore?: Date | null },
): Promise<void> {
  await em.execute("select pg_advisory_xact_lock(?)", [APPEND_LOCK]);
  await em.execute(
    `with c as (
       insert into user_changes (seq, user_id, type, snapshot, previous, revoke_before)
       values (nextval('user_changes_seq'), ?, ?, ?::jsonb, ?::jsonb, ?)
       returning seq)
     select pg_notify(?, seq::text) from c`,
    [
      change.row.id,
      change.type,
      JSON.stringify(snapshotOf(change.row)),
      change.previous ? JSON.stringify(change.previous) : null,
      change.revokeBefore ?? null,
      CHANGE_CHANNEL,
    ],
  );
}
