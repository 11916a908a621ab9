/**
 * The change log's share of pruning (src/ops/pruner.ts runs it, from the list in src/ops/prune-statements.ts): rows older than CHANGE_LOG_RETENTION are
 * deleted, and the highest seq deleted is recorded, so a resume token at or below it can be told apart
 * (RESUME_TOKEN_EXPIRED) from one that is merely old. A row not yet numbered by the sequencer is never
 * deleted, however old: nobody has read it yet.
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

/** One batch of change-log rows older than `retentionMs`, with the horizon moved past them. */
export function changeLogPrune(retentionMs: number): PruneStatement {
  return {
    table: "user_changes",
    sql: `with d as (
            delete from user_changes where ctid = any(array(
              select ctid from user_changes
              where change_time < now() - make_interval(secs => $2::double precision / 1000)
                and seq is not null limit $1))
            returning seq),
          h as (update user_changes_horizon set pruned_seq = greatest(pruned_seq, (select max(seq) from d))
                where exists (select 1 from d))
          select count(*) as n from d`,
    values: [retentionMs],
  };
}

/** Prunes the change log once (unless another replica is pruning); returns the number of rows deleted. */
export async function pruneChanges(pool: pg.Pool, retentionMs: number): Promise<number> {
  return (await pruneOnce(pool, [changeLogPrune(retentionMs)]))?.user_changes ?? 0;
}
