/**
 * Deletes change-log rows older than CHANGE_LOG_RETENTION and records the highest seq deleted, so a
 * resume token at or below it can be told apart (RESUME_TOKEN_EXPIRED) from one that is merely old.
 * Every replica runs it; an advisory lock keeps two from pruning at the same moment.
 */
import type pg from "pg";
import type { Logger } from "pino";

const PRUNE_LOCK = 0x70727565;

/** The highest seq pruned so far. */
export async function prunedSeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ pruned_seq: string }>({
    name: "pruned-seq",
    text: "select pruned_seq from user_changes_horizon",
  });
  return Number(rows[0]?.pruned_seq ?? 0);
}

/** Prunes once; returns the number of rows deleted. */
export async function pruneChanges(pool: pg.Pool, retentionMs: number): Promise<number> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1) as ok", [PRUNE_LOCK]);
    if (!rows[0]?.ok) return 0;
    try {
      const res = await client.query<{ n: string }>(
        `with d as (delete from user_changes where change_time < now() - make_interval(secs => $1::double precision / 1000) returning seq),
              h as (update user_changes_horizon set pruned_seq = greatest(pruned_seq, (select max(seq) from d))
                    where exists (select 1 from d))
         select count(*) as n from d`,
        [retentionMs],
      );
      return Number(res.rows[0]?.n ?? 0);
    } finally {
      await client.query("select pg_advisory_unlock($1)", [PRUNE_LOCK]);
    }
  } finally {
    client.release();
  }
}

/** Runs the pruner every `everyMs` until stopped. */
export function startPruner(pool: pg.Pool, opts: { retentionMs: number; everyMs?: number; log: Logger }): () => void {
  const timer = setInterval(() => {
    pruneChanges(pool, opts.retentionMs).then(
      (n) => n > 0 && opts.log.info({ pruned: n }, "change log pruned"),
      () => {},
    );
  }, opts.everyMs ?? 60_000);
  timer.unref();
  return () => clearInterval(timer);
}
