/**
 * The `writers-scaling` scenario (issue 14): how UpdateUser's throughput grows with concurrent writers when
 * every commit is slow, as it is with a synchronous standby in another zone.
 *
 * The scenario starts its own PostgreSQL pair from the Debian binaries (pg-cluster.ts; the embedded one has
 * no pg_basebackup), in a temporary directory, on free ports: a primary (fsync on) seeded with N users
 * (bench/seed.ts), a standby made by `pg_basebackup -R` that applies commits BENCH_APPLY_DELAY_MS late
 * (`recovery_min_apply_delay`), then `synchronous_standby_names = '*'` and `synchronous_commit = remote_apply`
 * on the primary: every commit waits until the standby has applied it, a few ms. Then:
 *
 * - the service (DB_POOL_MAX=40) with 1, 8 and 32 UpdateUser calls in flight (writes-load.ts), each for a
 *   warm-up and BENCH_DURATION; after each, every change it wrote must get its seq within a few seconds
 *   (the change log's sequencer keeps up: docs/adr/0016-sequencer.md);
 * - pgbench with 1 and 32 clients on the service's UpdateUser transaction (PGBENCH_SCRIPTS in writes.ts)
 *   with the change log's sequencer running beside it as a busy service process runs it (one call after
 *   another on one connection, each numbering everything committed), then the same without any sequencer:
 *   what the database allows with the service's statements as they now are, and with nothing ordering the
 *   log at all. (Until ADR 0016 the references were the commit trigger on and off: the report keeps the
 *   numbers of that time.)
 *
 * Each is reported as rates and the scaling x(32)/x(1). Everything started is stopped at the end, on failure
 * and on SIGINT (cleanUp).
 *
 * Environment (all optional): BENCH_SCALING_USERS (100000), BENCH_DURATION (10 s), BENCH_WARMUP (3 s),
 * BENCH_APPLY_DELAY_MS (5), BENCH_SCALING_WRITERS (1,8,32), BENCH_SCALING_PGBENCH_CLIENTS (1,32).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { benchAdminToken, seed } from "../seed.ts";
import { gitCommit, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";
import { runPgbench, startSequencerLoop } from "./pg-bench.ts";
import {
  baseBackup,
  ensureDebianPostgres,
  ensurePgbench,
  giveToServerUser,
  initCluster,
  type PgServer,
  startPostgres,
} from "./pg-cluster.ts";
import { fmt, PGBENCH_SCRIPTS, positive } from "./writes.ts";
import { runServiceLoad, stopLoads } from "./writes-load.ts";

const log = (line: string) => process.stderr.write(`bench:writers-scaling: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A comma list of positive integers from the environment, sorted. */
function counts(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (!raw) return fallback;
  const values = raw.split(",").map((s) => Number(s.trim()));
  if (values.some((n) => !Number.isInteger(n) || n <= 0))
    throw new Error(`${name}: "${raw}" is not a comma list of positive integers`);
  return [...new Set(values)].sort((a, b) => a - b);
}

const GOAL_SCALING = 8;

const running = new Set<ServerProcess>();
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
/**
 * Load generators and servers first (a service whose database is gone shuts down slowly), then the rest in
 * reverse order. A second caller meanwhile (SIGINT arrives, the run fails because of it and cleans up too)
 * waits for the same cleanup instead of racing it.
 */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    stopLoads();
    await Promise.all([...running].map((s) => s.stop().catch((err: unknown) => log(`cleanup: ${String(err)}`))));
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  })().finally(() => {
    cleaning = undefined;
  });
  return cleaning;
}

/** One measured load. */
interface Point {
  series: "service" | "sequencer" | "no sequencer";
  concurrency: number;
  rate: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuUsPerCall: number;
  postgresCpuUsPerCall: number;
}

/** `writers-scaling`: returns the markdown report. */
export async function writersScaling(): Promise<string> {
  try {
    return await measure();
  } finally {
    await cleanUp();
  }
}

async function measure(): Promise<string> {
  const loadAverage = loadavg()[0];
  const durationSeconds = positive("BENCH_DURATION", 10);
  const warmupSeconds = positive("BENCH_WARMUP", 3);
  const users = positive("BENCH_SCALING_USERS", 100_000);
  const applyDelayMs = positive("BENCH_APPLY_DELAY_MS", 5);
  const writers = counts("BENCH_SCALING_WRITERS", [1, 8, 32]);
  const pgClients = counts("BENCH_SCALING_PGBENCH_CLIENTS", [1, 32]);
  const pgbench = await ensurePgbench(log);
  const postgres = await ensureDebianPostgres(log);

  const work = mkdtempSync(join(tmpdir(), "user-service-bench-scaling-"));
  giveToServerUser(work);
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  const password = randomBytes(18).toString("base64url");

  const primaryDir = join(work, "primary");
  await initCluster(postgres.bin, primaryDir, password);
  const primary: PgServer = await startPostgres("primary", postgres.bin, primaryDir, password, { fsync: "on" });
  cleanups.push(() => primary.stop());
  log(`primary (${postgres.version}) on 127.0.0.1:${primary.port}`);
  const seeding = performance.now();
  await seed(primary.url, users);
  log(`seeded ${users} users in ${Math.round(performance.now() - seeding)} ms`);

  const standbyDir = join(work, "standby");
  await baseBackup(postgres.bin, primary, standbyDir, password);
  const standby: PgServer = await startPostgres("standby", postgres.bin, standbyDir, password, {
    hot_standby: "on",
    recovery_min_apply_delay: `${applyDelayMs}ms`,
  });
  cleanups.push(() => standby.stop());
  log(`standby on 127.0.0.1:${standby.port}, applying commits ${applyDelayMs} ms late`);

  const db = new pg.Client({ connectionString: primary.url });
  await db.connect();
  cleanups.push(() => db.end());
  // Only now that the standby streams: with a synchronous standby named and none connected, commits would hang.
  await db.query("alter system set synchronous_standby_names = '*'");
  await db.query("alter system set synchronous_commit = 'remote_apply'");
  await db.query("select pg_reload_conf()");
  for (let i = 0; ; i++) {
    const { rows } = await db.query<{ sync_state: string }>("select sync_state from pg_stat_replication");
    if (rows.some((r) => r.sync_state === "sync")) break;
    if (i > 300)
      throw new Error(
        `the standby is not a synchronous standby after 30 s (${JSON.stringify(rows)}):\n${standby.logTail()}`,
      );
    await sleep(100);
  }

  // One commit at a time: each must wait for the standby's delayed apply.
  await db.query("create table bench_commit_probe (x int)");
  const probes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await db.query("insert into bench_commit_probe values ($1)", [i]);
    probes.push(performance.now() - t0);
  }
  await db.query("drop table bench_commit_probe");
  probes.sort((a, b) => a - b);
  const commitMs = probes[Math.floor(probes.length / 2)];
  log(`a single commit takes ${fmt(commitMs, 1)} ms (median of 20)`);
  if (commitMs < applyDelayMs * 0.9)
    throw new Error(`a commit took ${fmt(commitMs, 1)} ms: the standby does not delay it by ${applyDelayMs} ms`);

  const env: ServerEnv = {
    DATABASE_URL: primary.url,
    JWT_SECRET: randomBytes(48).toString("base64url"),
    JWT_ISSUER: process.env.JWT_ISSUER || "user-service",
    JWT_AUDIENCE: process.env.JWT_AUDIENCE || "user-service",
    DB_POOL_MAX: "40",
  };
  const token = benchAdminToken(env, 12 * 3600);
  const updates = async () =>
    Number((await db.query<{ n: string }>("select count(*) as n from user_changes where type = 'updated'")).rows[0].n);
  const unsequenced = async () =>
    Number((await db.query<{ n: string }>("select count(*) as n from user_changes where seq is null")).rows[0].n);
  const points: Point[] = [];
  const report = (p: Point) => {
    points.push(p);
    log(
      `${p.series}, ${p.concurrency} ${p.series === "service" ? "in flight" : "clients"}: ${fmt(p.rate)}/s, ` +
        `p50 ${fmt(p.p50Ms, 1)} ms, p99 ${fmt(p.p99Ms, 1)} ms` +
        (p.series === "service" ? `, server CPU ${fmt(p.serverCpuUsPerCall)} µs/call` : "") +
        `, primary CPU ${fmt(p.postgresCpuUsPerCall)} µs/call`,
    );
  };

  for (const inFlight of writers) {
    const server = await startServer("service", env);
    running.add(server);
    try {
      const before = await updates();
      await db.query("checkpoint");
      const r = await runServiceLoad({
        op: "update",
        origin: server.origin,
        token,
        inFlight,
        connections: Math.min(inFlight, 4),
        warmupSeconds,
        durationSeconds,
        users,
        tag: "scaling",
        serverPid: server.pid,
        postgresPid: primary.pid,
      });
      if (r.failures > 0) {
        const output = server.output().trim();
        throw new Error(
          `UpdateUser with ${inFlight} in flight: ${r.failures} failed calls (${r.okCalls} succeeded):\n` +
            `${r.firstFailures.join("\n")}${output ? `\nserver output (tail):\n${output}` : ""}`,
        );
      }
      const added = (await updates()) - before;
      if (added !== r.okCalls)
        throw new Error(`UpdateUser: ${r.okCalls} successful calls but ${added} 'updated' change-log rows`);
      // The service numbers its own changes right after each commit: none may be left behind for long.
      for (let i = 0; (await unsequenced()) > 0; i++) {
        if (i > 50) throw new Error(`UpdateUser: ${await unsequenced()} changes still have no seq 5 s after the load`);
        await sleep(100);
      }
      report({
        series: "service",
        concurrency: inFlight,
        rate: r.rps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        serverCpuUsPerCall: (r.serverCpuSeconds / r.measured) * 1e6,
        postgresCpuUsPerCall: (r.postgresCpuSeconds / r.measured) * 1e6,
      });
    } finally {
      await server.stop();
      running.delete(server);
    }
  }

  const sequencerLoop = () => startSequencerLoop(primary.url);
  const pgbenchSeries = async (series: "sequencer" | "no sequencer") => {
    for (const clients of pgClients) {
      await db.query("checkpoint");
      const stopSequencer = series === "sequencer" ? await sequencerLoop() : undefined;
      let r: Awaited<ReturnType<typeof runPgbench>>;
      try {
        r = await runPgbench({
          pgbench: pgbench.path,
          label: `scaling-${series.replace(" ", "-")}-${clients}`,
          script: PGBENCH_SCRIPTS.update.transaction,
          url: primary.url,
          clients,
          warmupSeconds,
          durationSeconds,
          vars: { users },
          workDir: work,
          postgresPid: primary.pid,
        });
      } finally {
        const calls = await stopSequencer?.();
        if (calls !== undefined) log(`${series}, ${clients} clients: ${fmt(calls)} sequencer calls`);
        // Whatever is left (all of it without a sequencer) is numbered before the next load.
        await db.query("select user_changes_sequence(true, 100000000)");
      }
      report({
        series,
        concurrency: clients,
        rate: r.tps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        serverCpuUsPerCall: Number.NaN,
        postgresCpuUsPerCall: (r.postgresCpuSeconds / r.transactions) * 1e6,
      });
    }
  };
  await pgbenchSeries("sequencer");
  await pgbenchSeries("no sequencer");

  const version = (await db.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;
  return render(
    {
      date: new Date().toISOString().slice(0, 16).replace("T", " "),
      commit: gitCommit(),
      node: process.version,
      cpus: availableParallelism(),
      loadAverage,
      postgres: `${version} (Debian binaries, ${postgres.bin})`,
      pgbench: pgbench.version,
      users,
      applyDelayMs,
      commitMs,
      durationSeconds,
      warmupSeconds,
    },
    writers,
    pgClients,
    points,
  );
}

interface Info {
  date: string;
  commit: string;
  node: string;
  cpus: number;
  loadAverage: number;
  postgres: string;
  pgbench: string;
  users: number;
  applyDelayMs: number;
  commitMs: number;
  durationSeconds: number;
  warmupSeconds: number;
}

function render(info: Info, writers: number[], pgClients: number[], points: Point[]): string {
  const columns = [...new Set([...writers, ...pgClients])].sort((a, b) => a - b);
  const series: { key: Point["series"]; name: string; unit: string }[] = [
    { key: "service", name: "service UpdateUser (gRPC), calls in flight", unit: "req/s" },
    { key: "sequencer", name: "pgbench, the service's UpdateUser transaction, a sequencer beside it", unit: "tps" },
    { key: "no sequencer", name: "pgbench, the same transaction, no sequencer", unit: "tps" },
  ];
  const at = (key: Point["series"], n: number) => points.find((p) => p.series === key && p.concurrency === n);
  const scaling = (key: Point["series"]) => {
    const own = points.filter((p) => p.series === key).sort((a, b) => a.concurrency - b.concurrency);
    if (own.length < 2) return { text: "n/a", value: Number.NaN };
    const lo = own[0];
    const hi = own[own.length - 1];
    const value = hi.rate / lo.rate;
    return { text: `x(${hi.concurrency})/x(${lo.concurrency}) = ${fmt(value, 2)}`, value };
  };
  const service = scaling("service");
  const out: string[] = [
    "# Writers scaling: UpdateUser with slow commits (a delayed synchronous standby)",
    "",
    `${info.date}, commit ${info.commit}, Node ${info.node}, ${info.cpus} CPUs (load average ${fmt(info.loadAverage, 2)} before the run).`,
    `PostgreSQL ${info.postgres}: a primary (fsync on, \`synchronous_standby_names = '*'\`, \`synchronous_commit = remote_apply\`)`,
    `and a standby made by \`pg_basebackup -R\` with \`recovery_min_apply_delay = ${info.applyDelayMs}ms\`, both on this machine; a single`,
    `commit took ${fmt(info.commitMs, 1)} ms (median of 20). ${fmt(info.users)} users seeded. ${info.pgbench}, \`-M prepared\`.`,
    `Each load: ${info.warmupSeconds} s warm-up, then ${info.durationSeconds} s measured; the service (DB_POOL_MAX=40) is stopped while pgbench runs.`,
    "The machine is shared: rates and latencies move between runs.",
    "",
    `| load | ${columns.map((c) => `${c}`).join(" | ")} | scaling |`,
    `|---|${columns.map(() => "--:").join("|")}|---|`,
  ];
  for (const s of series) {
    const cells = columns.map((c) => {
      const p = at(s.key, c);
      return p ? fmt(p.rate) : "";
    });
    out.push(`| ${s.name} (${s.unit}) | ${cells.join(" | ")} | ${scaling(s.key).text} |`);
  }
  out.push(
    "",
    `Goal of issue 14 (reported, not asserted): the service scales ≥ ${GOAL_SCALING}x from 1 to 32 writers: ${fmt(service.value, 2)}x, ` +
      `${service.value >= GOAL_SCALING ? "met" : "**not met**"}.`,
    "The issue's numbers before this scenario existed: trigger on 145 → 148 tps (x1.02), trigger off 155 → 1,945 (x12.6),",
    "service 81 → 148 req/s (x1.8). With the commit trigger (before ADR 0016), on 2026-12-05: service 88 → 141 req/s (x1.60),",
    "pgbench trigger on 160 → 160 tps (x1.00), trigger off 162 → 3,337 (x20.6).",
    "",
    "## Every load",
    "",
    "| load | writers | per second | p50 ms | p99 ms | server CPU µs/call | primary PostgreSQL CPU µs/call |",
    "|---|--:|--:|--:|--:|--:|--:|",
    ...points.map(
      (p) =>
        `| ${p.series === "service" ? "service UpdateUser" : `pgbench, ${p.series}`} | ${p.concurrency} | ${fmt(p.rate)} | ${fmt(p.p50Ms, 1)} | ${fmt(p.p99Ms, 1)} | ${p.series === "service" ? fmt(p.serverCpuUsPerCall) : ""} | ${fmt(p.postgresCpuUsPerCall)} |`,
    ),
    "",
    "The pgbench script is the UpdateUser transaction of the `writes` scenario (bench/scenarios/writes.ts, PGBENCH_SCRIPTS):",
    "",
    "```sql",
    PGBENCH_SCRIPTS.update.transaction.trimEnd(),
    "```",
    "",
  );
  return out.join("\n");
}

/** Stops the servers, load generators and both PostgreSQL of a run still going (on SIGINT). */
export { cleanUp };
