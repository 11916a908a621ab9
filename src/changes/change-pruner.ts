/**
 * The change log's share of pruning (src/ops/pruner.ts runs it, from the list in src/app/prune-statements.ts).
 * A change serves two readers for two different spans (docs/adr/0022-actor-and-history.md):
 *
 * - WatchUsers resumes within CHANGE_LOG_RETENTION. Past it, the horizon (`user_changes_horizon.pruned_seq`)
 *   moves to the highest seq older than that, so a resume token at or below it is told apart
 *   (RESUME_TOKEN_EXPIRED) from one that is merely old, exactly as when those rows were deleted; and the
 *   row's `previous` (kept only for watchers' filter matching) is dropped.
 * - ListUserChanges lists changes within AUDIT_RETENTION: older rows are deleted (and the horizon moved past
 *   them too, should AUDIT_RETENTION ever be the shorter).
 *
 * A row not yet numbered by the sequencer is never touched, however old: nobody has read it yet.
 */
import type pg from "pg";
import { type PruneStatement, pruneOnce } from "../ops/pruner.ts";

/** The highest seq pruned so far. */
export async function prunedSeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ pruned_seq: string }>({
    name: "pruned-seq",
    text: "select pruned_seq from user_changes_horizon",
  });
  return Number(rows[0]?.pruned_seq ?? 0);
}

const olderThan = (param: string) => `change_time < now() - make_interval(secs => ${param}::double precision / 1000)`;

/** One batch of change-log rows older than `retentionMs` deleted, with the horizon moved past them. */
export function changeLogPrune(retentionMs: number): PruneStatement {
  return {
    table: "user_changes",
    sql: `with d as (
            delete from user_changes where ctid = any(array(
              select ctid from user_changes
              where ${olderThan("$2")} and seq is not null limit $1))
            returning seq),
          h as (update user_changes_horizon set pruned_seq = greatest(pruned_seq, (select max(seq) from d))
                where exists (select 1 from d))
          select count(*) as n from d`,
    values: [retentionMs],
  };
}

/**
 * The end of WatchUsers' span: the horizon moved to the newest change older than `retentionMs` (seqs are
 * numbered in change_time order, under the sequencer's lock: the change_time index finds it at once), and
 * one batch of those rows trimmed of `previous`. Counts the rows trimmed ("user_changes_previous").
 */
export function changeLogHorizon(retentionMs: number): PruneStatement {
  return {
    table: "user_changes_previous",
    sql: `with t as (
            update user_changes set previous = null where ctid = any(array(
              select ctid from user_changes
              where ${olderThan("$2")} and seq is not null and previous is not null limit $1))
            returning 1),
          edge as (select seq from user_changes where ${olderThan("$2")} and seq is not null
                   order by change_time desc limit 1),
          h as (update user_changes_horizon set pruned_seq = (select seq from edge)
                where pruned_seq < (select seq from edge))
          select count(*) as n from t`,
    values: [retentionMs],
  };
}

/** The change log's prune statements: WatchUsers' horizon, then history's retention (never the shorter). */
export function changeLogStatements(opts: { changeLogRetentionMs: number; auditRetentionMs: number }) {
  return [
    changeLogHorizon(opts.changeLogRetentionMs),
    changeLogPrune(Math.max(opts.auditRetentionMs, opts.changeLogRetentionMs)),
  ];
}

/** Deletes the change log older than `retentionMs` once (unless another replica is pruning); returns the rows deleted. */
export async function pruneChanges(pool: pg.Pool, retentionMs: number): Promise<number> {
  return (await pruneOnce(pool, [changeLogPrune(retentionMs)]))?.user_changes ?? 0;
}

/** Moves WatchUsers' horizon past changes older than `retentionMs` once; returns the rows trimmed. */
export async function expireChanges(pool: pg.Pool, retentionMs: number): Promise<number> {
  return (await pruneOnce(pool, [changeLogHorizon(retentionMs)]))?.user_changes_previous ?? 0;
}
