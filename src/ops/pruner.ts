/**
 * Deletes what no longer serves anyone (src/ops/prune-statements.ts lists what, per table) so tables that
 * only grow stop growing. Every replica runs it on a timer; a session-level advisory lock lets one replica
 * prune at a time while the others skip the round. Each statement deletes a bounded batch in its own short
 * transaction and repeats until nothing is left, so a backlog of millions never holds one long transaction
 * (nor one long lock on the rows) and a shutdown can stop between two batches.
 */
import type pg from "pg";
import type { Logger } from "pino";

/**
 * One batch of deletions from `table` (the metric's label): `sql` deletes at most `$1` rows (further
 * parameters come from `values`) and reports how many, as its row count or, for a statement that is not
 * itself the delete, as a column `n` of its one row.
 */
export interface PruneStatement {
  readonly table: string;
  readonly sql: string;
  readonly values?: readonly unknown[];
}

// "prue": the key the change-log pruner always used, so replicas of an older version during a rolling
// update do not prune at the same time as this one.
const PRUNE_LOCK = 0x70727565;

/** Rows per batch: large enough to keep up, small enough for a transaction of a few tens of milliseconds. */
export const PRUNE_BATCH = 10_000;

/** What one round did: rows deleted per table, or undefined when another replica held the lock. */
export type PruneRound = Record<string, number> | undefined;

/** Options of a round: batch size, what to tell of each batch, and a way to stop between batches. */
export interface PruneOptions {
  batch?: number;
  onPruned?: (table: string, rows: number) => void;
  log?: Logger;
  stopped?: () => boolean;
}

/** Runs every statement to the end, unless another replica is pruning; a failing statement does not stop the others. */
export async function pruneOnce(
  pool: pg.Pool,
  statements: readonly PruneStatement[],
  opts: PruneOptions = {},
): Promise<PruneRound> {
  const batch = opts.batch ?? PRUNE_BATCH;
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>("select pg_try_advisory_lock($1) as ok", [PRUNE_LOCK]);
    if (!rows[0]?.ok) return undefined;
    const round: Record<string, number> = {};
    try {
      for (const s of statements) {
        round[s.table] ??= 0;
        try {
          for (let n = batch; n >= batch && !opts.stopped?.(); ) {
            const res = await client.query<{ n?: string }>(s.sql, [batch, ...(s.values ?? [])]);
            n = res.rows[0]?.n !== undefined ? Number(res.rows[0].n) : (res.rowCount ?? 0);
            round[s.table] += n;
            if (n > 0) opts.onPruned?.(s.table, n);
          }
        } catch (err) {
          // The SQLSTATE only: a message could quote row values.
          opts.log?.warn(
            { table: s.table, code: (err as { code?: string }).code },
            "pruning failed; retried next round",
          );
        }
      }
    } finally {
      await client.query("select pg_advisory_unlock($1)", [PRUNE_LOCK]);
    }
    return round;
  } finally {
    client.release();
  }
}

/** Prunes every `everyMs` (one round at a time) until the returned stop, which waits for a round in progress. */
export function startPruner(
  pool: pg.Pool,
  opts: { statements: readonly PruneStatement[]; everyMs: number; log: Logger; onPruned?: PruneOptions["onPruned"] },
): () => Promise<void> {
  let stopped = false;
  let running: Promise<void> | undefined;
  const round = async () => {
    const pruned = await pruneOnce(pool, opts.statements, { ...opts, stopped: () => stopped });
    const deleted = Object.entries(pruned ?? {}).filter(([, n]) => n > 0);
    if (deleted.length > 0) opts.log.info({ pruned: Object.fromEntries(deleted) }, "expired rows pruned");
  };
  const timer = setInterval(() => {
    running ??= round()
      .catch((err: unknown) => opts.log.warn({ code: (err as { code?: string }).code }, "pruning round failed"))
      .finally(() => {
        running = undefined;
      });
  }, opts.everyMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
