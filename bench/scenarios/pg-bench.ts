/**
 * pgbench as the reference of the write scenarios: a custom script (the service's transaction, written out
 * as SQL) run by N clients with `-M prepared` for a warm-up, then for the measured duration with a
 * per-transaction log (`-l`), from which p50/p99 come. tps is pgbench's own (without connection time).
 * PostgreSQL's CPU over the measured run is read from /proc when the database is local.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { postgresCpuSeconds } from "./pg-cluster.ts";

/** One pgbench load. */
export interface PgbenchOptions {
  /** pgbench binary. */
  pgbench: string;
  /** Names the files this run leaves in `workDir`. */
  label: string;
  /** The custom script (pgbench syntax: SQL statements ending in `;`, `\set`, `\gset`...). */
  script: string;
  /** postgres:// URL of the database. */
  url: string;
  clients: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** Variables given to every client (`-D name=value`). */
  vars?: Record<string, string | number>;
  /** Variables of the warm-up instead (e.g. other users to delete, other emails to create); default `vars`. */
  warmupVars?: Record<string, string | number>;
  workDir: string;
  /** The postmaster's pid of a local PostgreSQL, to read its CPU time. */
  postgresPid?: number;
}

/** What a pgbench load measured. */
export interface PgbenchResult {
  /** Transactions of the measured run. */
  transactions: number;
  /** Transactions of the warm-up. */
  warmupTransactions: number;
  tps: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** PostgreSQL CPU seconds over the measured run (NaN when not local). */
  postgresCpuSeconds: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function pgbench(
  opts: PgbenchOptions,
  scriptFile: string,
  seconds: number,
  vars: Record<string, string | number>,
  logPrefix?: string,
): Promise<{ output: string }> {
  const url = new URL(opts.url);
  const args = [
    "--no-vacuum",
    "--protocol=prepared",
    `--client=${opts.clients}`,
    `--jobs=${Math.min(opts.clients, availableParallelism())}`,
    `--time=${seconds}`,
    `--file=${scriptFile}`,
    ...Object.entries(vars).map(([k, v]) => `--define=${k}=${v}`),
    ...(logPrefix ? ["--log", `--log-prefix=${logPrefix}`] : []),
    `--host=${url.hostname}`,
    `--port=${url.port || "5432"}`,
    `--username=${decodeURIComponent(url.username)}`,
    decodeURIComponent(url.pathname.slice(1)) || "postgres",
  ];
  return new Promise((resolve, reject) => {
    execFile(
      opts.pgbench,
      args,
      {
        cwd: opts.workDir,
        env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password), PGAPPNAME: `pgbench-${opts.label}` },
        maxBuffer: 16 * 2 ** 20,
      },
      (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        if (err)
          reject(new Error(`pgbench ${opts.label} failed (${err.message.split("\n")[0]}):\n${output.slice(-3000)}`));
        else resolve({ output });
      },
    );
  });
}

/** Transactions and tps from pgbench's summary; throws when a transaction failed or a client aborted. */
function check(opts: PgbenchOptions, output: string): { transactions: number; tps: number } {
  const processed = /number of transactions actually processed: (\d+)/.exec(output);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(output);
  const failed = Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0);
  if (!processed || !tps) throw new Error(`pgbench ${opts.label}: no result in its output:\n${output.slice(-3000)}`);
  if (failed > 0 || /aborted/i.test(output))
    throw new Error(`pgbench ${opts.label}: ${failed} failed transactions:\n${output.slice(-3000)}`);
  return { transactions: Number(processed[1]), tps: Number(tps[1]) };
}

/** Runs a warm-up and a measured pgbench load; throws when a transaction failed or a client aborted. */
export async function runPgbench(opts: PgbenchOptions): Promise<PgbenchResult> {
  const scriptFile = join(opts.workDir, `${opts.label}.pgbench.sql`);
  writeFileSync(scriptFile, opts.script);
  const warmup =
    opts.warmupSeconds > 0
      ? check(opts, (await pgbench(opts, scriptFile, opts.warmupSeconds, opts.warmupVars ?? opts.vars ?? {})).output)
      : { transactions: 0, tps: 0 };
  const logPrefix = `${opts.label}.pgbench-log`;
  for (const f of readdirSync(opts.workDir)) if (f.startsWith(logPrefix)) rmSync(join(opts.workDir, f));
  const cpu0 = opts.postgresPid ? postgresCpuSeconds(opts.postgresPid) : Number.NaN;
  const { output } = await pgbench(opts, scriptFile, opts.durationSeconds, opts.vars ?? {}, logPrefix);
  const cpu1 = opts.postgresPid ? postgresCpuSeconds(opts.postgresPid) : Number.NaN;
  const measured = check(opts, output);

  // Per-transaction log: client_id transaction_no time(µs) script_no time_epoch time_us, one file per thread.
  const latencies: number[] = [];
  for (const f of readdirSync(opts.workDir)) {
    if (!f.startsWith(logPrefix)) continue;
    for (const line of readFileSync(join(opts.workDir, f), "utf8").split("\n")) {
      const fields = line.split(" ");
      if (fields.length >= 6) latencies.push(Number(fields[2]) / 1000);
    }
    rmSync(join(opts.workDir, f));
  }
  const sorted = Float64Array.from(latencies).sort();
  return {
    transactions: measured.transactions,
    warmupTransactions: warmup.transactions,
    tps: measured.tps,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / (latencies.length || 1),
    postgresCpuSeconds: cpu1 - cpu0,
  };
}

/**
 * One service process's change-log sequencer (docs/adr/0016), busy: one call after another on its own
 * connection, each numbering everything committed, as a service's feed runs it after its writes. Runs beside
 * a pgbench load so that the reference does the database work the service's writes cause. Resolves to a stop
 * function, which resolves to the number of calls made.
 */
export async function startSequencerLoop(url: string): Promise<() => Promise<number>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  let running = true;
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const { rows } = await c.query<{ n: number }>("select user_changes_sequence(true, 1000) as n");
      calls++;
      // The service runs it after its writes, not in a spin: with nothing to number, wait a moment.
      if (rows[0].n === 0) await new Promise<void>((r) => setTimeout(r, 1));
    }
  })();
  return async () => {
    running = false;
    await loop.finally(() => c.end());
    return calls;
  };
}
