/**
 * What PostgreSQL ran during a load, from pg_stat_statements (when the server preloads it): every
 * statement with its calls per call of the load, so the service's statements per write can be read next to
 * those of the pgbench script that stands for them. With `track = all` it also counts the statements that
 * triggers run; a deferred trigger runs during COMMIT, outside any statement, so pg_stat_statements counts its
 * statements as top-level: the caller names them (`triggerPatterns`) to tell them apart. BEGIN and COMMIT are
 * counted only when sent as simple queries (pgbench's prepared protocol sends them unseen), so they are kept
 * apart too, and "statements per call" counts neither.
 */
import type pg from "pg";

/** One statement of a load, normalised by pg_stat_statements. */
export interface StatementStat {
  query: string;
  calls: number;
  /** Calls per call (RPC or transaction) of the load. */
  perCall: number;
  meanMs: number;
  /** BEGIN/COMMIT, a statement run by a trigger, or any other statement. */
  kind: "control" | "trigger" | "statement";
}

/** Creates the extension if the server preloads the library; false when it is not available. */
export async function enableStatements(db: pg.Client): Promise<boolean> {
  try {
    await db.query("create extension if not exists pg_stat_statements");
    await db.query("select 1 from pg_stat_statements limit 1");
    return true;
  } catch {
    return false;
  }
}

/** Forgets what was counted so far. */
export async function resetStatements(db: pg.Client): Promise<void> {
  await db.query("select pg_stat_statements_reset()");
}

/**
 * The statements counted since the last reset that ran at least `minPerCall` times per call of the load
 * (`calls` of them), most frequent first, without the benchmark's own (those that read or reset the view).
 */
export async function readStatements(
  db: pg.Client,
  calls: number,
  triggerPatterns: readonly RegExp[],
  minPerCall = 0.02,
): Promise<StatementStat[]> {
  const { rows } = await db.query<{ query: string; calls: string; mean: number }>(
    `select query, calls, mean_exec_time as mean from pg_stat_statements
     where dbid = (select oid from pg_database where datname = current_database())
       and query not ilike '%pg_stat_statements%' and query not ilike 'checkpoint%'
     order by calls desc`,
  );
  const kindOf = (q: string): StatementStat["kind"] =>
    /^(begin|commit|end|rollback|start transaction)\b/i.test(q)
      ? "control"
      : triggerPatterns.some((p) => p.test(q))
        ? "trigger"
        : "statement";
  return rows
    .map((r) => {
      const query = r.query.replace(/\s+/g, " ").trim();
      return { query, calls: Number(r.calls), perCall: Number(r.calls) / calls, meanMs: r.mean, kind: kindOf(query) };
    })
    .filter((s) => s.perCall >= minPerCall);
}

/** Statements per call, BEGIN/COMMIT and the triggers' statements left out. */
export function statementsPerCall(stats: readonly StatementStat[]): number {
  return stats.filter((s) => s.kind === "statement").reduce((a, s) => a + s.perCall, 0);
}

const kindNames: Record<StatementStat["kind"], string> = {
  control: "BEGIN/COMMIT",
  trigger: "commit trigger",
  statement: "statement",
};

/** A markdown table of a load's statements. */
export function statementsTable(stats: readonly StatementStat[], maxQuery = 220): string[] {
  const cell = (q: string) => {
    const short = q.length > maxQuery ? `${q.slice(0, maxQuery)}…` : q;
    return `\`${short.replaceAll("|", "\\|").replaceAll("`", "'")}\``;
  };
  return [
    "| per call | mean ms | kind | statement (normalised) |",
    "|--:|--:|---|---|",
    ...stats.map(
      (s) => `| ${s.perCall.toFixed(2)} | ${s.meanMs.toFixed(3)} | ${kindNames[s.kind]} | ${cell(s.query)} |`,
    ),
  ];
}
