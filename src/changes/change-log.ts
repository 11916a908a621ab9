/**
 * Appending to the change log, inside the transaction of the write it records, and ordering it afterwards.
 *
 * The commit-order trap: a sequence value taken at insert can commit after a larger one, so a reader that
 * has seen 12 could later see 11 appear. Rows are therefore inserted without a seq, and writers commit side
 * by side, taking no lock of the log's. `sequenceChanges` then numbers the committed rows (migration
 * Migration20261206001600, docs/adr/0016-sequencer.md): under one advisory lock, held only by sequencers, in
 * id order, with one NOTIFY when it numbered any. Seq order is the order rows became visible with a seq, so
 * "everything after seq N" is exact. The writing process runs it right after its commit (the change feed's
 * `poke`), and every process's feed runs it on its poll, for a writer that died in between. NOTIFY is only a
 * wake-up; listeners read the log.
 */
import type { EntityManager } from "@mikro-orm/postgresql";
import type pg from "pg";

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
  /** Absent in rows logged before it existed: "human". */
  kind?: "human" | "service";
  labels: Record<string, string>;
  /** Absent in rows logged before they existed: false. */
  emailVerified?: boolean;
  passwordChangeRequired?: boolean;
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

/** Appends one change in the write's transaction (its seq is assigned after the commit, by `sequenceChanges`). */
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

/**
 * Numbers up to `batch` committed changes that have no seq yet, in id order, and wakes the listeners when it
 * numbered any. With `wait`, waits for another sequencer to finish; without, returns null when one is
 * running (it numbers whatever is committed). Resolves with the count numbered. Its own transaction: call it
 * outside any.
 */
export async function sequenceChanges(
  db: pg.ClientBase | pg.Pool,
  wait: boolean,
  batch: number,
): Promise<number | null> {
  const { rows } = await db.query<{ n: number | null }>({
    name: "sequence-changes",
    text: "select user_changes_sequence($1, $2) as n",
    values: [wait, batch],
  });
  return rows[0]?.n ?? null;
}
