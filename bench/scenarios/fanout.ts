/**
 * The `fanout` scenario (issue 14, item 4): WatchUsers fan-out under a steady write load, on one service
 * process (the server bundle, as deployed) on PostgreSQL (embedded, or BENCH_DATABASE_URL).
 *
 * 1. `main` phase: 20 watchers of every change and 980 watchers with a filter (`labels.team = "team-K"`,
 *    spread over the 97 teams of the seeded users) while UpdateUser runs at 200/s for BENCH_FANOUT_SECONDS.
 * 2. `push` phase (BENCH_FANOUT_PUSH=off skips it): 1,000 watchers of every change at 100 writes/s for
 *    BENCH_FANOUT_PUSH_SECONDS: the limit, reported with the same numbers.
 *
 * Each phase: a fresh service process; the watchers in child processes (fanout-watchers.ts: gRPC over
 * HTTP/2, BENCH_FANOUT_STREAMS_PER_CONNECTION streams per connection); the writer in its own child process
 * (fanout-writer.ts: open-loop, each write numbered in the labels it sets). Warm-up writes until every
 * watcher has received an event; then the measured writes; then a drain until every expected event is in.
 *
 * What each watcher should have received is computed from the database, not from the writer's view: the
 * change-log rows of the phase's writes (`bench_run` label), each with its user's team before and after
 * the change. A watcher with no filter expects all of them, a watcher of team K those whose user is in K
 * before or after (the service's rule for filters). Every acknowledged write must be in the change log.
 *
 * Goals (reported, as issue 14 sets them): no failed write, the write rate held, no missing event,
 * commit -> delivery p99 <= 250 ms. The scenario fails (throws, after writing its report to
 * bench/results/fanout.md) on a wrong answer: a missing, duplicate or unexpected event, an acknowledged
 * write missing from the change log, or a phase with no committed write.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../src/db/embedded-postgres.ts";
import { benchAdminToken, benchUserId, seed } from "../seed.ts";
import { gitCommit, repoRoot, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";
import {
  bitsFromBase64,
  countBits,
  difference,
  hasBit,
  type LatencySummary,
  mergeHistograms,
  newBits,
  setBit,
  type WatcherSpec,
  type WatchersProgress,
  type WatchersResult,
  type WatchersStart,
  type WriterResult,
  type WriterRun,
  type WriterWarmed,
  type WriterWarmup,
  type WriteTarget,
} from "./fanout-shared.ts";
import { cpuOf, type MetricsSample, machineTicks, postgresCpu, rssNow, scrapeMetrics } from "./fanout-system.ts";

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: "${raw}" is not a positive number`);
  return n;
}

function nonNegativeInt(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: "${raw}" is not a whole number >= 0`);
  return n;
}

function onOff(name: string, fallback: boolean): boolean {
  const raw = (process.env[name] ?? "").trim().toLowerCase();
  if (raw === "") return fallback;
  if (["1", "on", "true", "yes"].includes(raw)) return true;
  if (["0", "off", "false", "no"].includes(raw)) return false;
  throw new Error(`${name}: "${raw}" is not on or off`);
}

const log = (line: string) => process.stderr.write(`bench:fanout: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";
const mb = (bytes: number) => fmt(bytes / 2 ** 20);

/** Users written to: 20 of each of the seed's 97 teams (user i is in team i % 97). */
const TARGET_USERS = 97 * 20;
/** A drain that makes no progress for this long is over. */
const DRAIN_STALL_MS = 10_000;
/** The write rate goal: achieved >= this share of the target rate. */
const RATE_HELD = 0.98;
/** The latency goal: commit -> delivery p99, ms. */
const P99_GOAL_MS = 250;

interface PhaseSpec {
  key: "main" | "push";
  title: string;
  rate: number;
  seconds: number;
  /** Watchers of every change. */
  all: number;
  /** Watchers with a team filter. */
  filtered: number;
}

// ---------------------------------------------------------------------------------------------------------
// Child processes

interface Child<Out extends { type: string }> {
  proc: ChildProcess;
  send(m: object): void;
  /** The next message of this type (rejects when the process exits first, or on timeout). */
  next<T extends Out["type"]>(type: T, timeoutMs: number): Promise<Extract<Out, { type: T }>>;
  onMessage(listener: (m: Out) => void): void;
}

const children = new Set<ChildProcess>();

function spawnChild<Out extends { type: string }>(script: string, env: Record<string, string>): Child<Out> {
  const proc = fork(join(repoRoot, "bench/scenarios", script), [], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  const listeners = new Set<(m: Out) => void>();
  proc.on("message", (m: Out) => {
    for (const l of [...listeners]) l(m);
  });
  return {
    proc,
    send: (m) => proc.send(m),
    onMessage: (l) => listeners.add(l),
    next<T extends Out["type"]>(type: T, timeoutMs: number) {
      return new Promise<Extract<Out, { type: T }>>((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`${script}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
        const onExit = (code: number | null, signal: string | null) =>
          finish(new Error(`${script} exited (${code ?? signal}) before its ${type}`));
        const listener = (m: Out) => {
          if (m.type === type) finish(undefined, m as Extract<Out, { type: T }>);
        };
        function finish(err: Error | undefined, m?: Extract<Out, { type: T }>) {
          clearTimeout(timer);
          listeners.delete(listener);
          proc.off("exit", onExit);
          if (err) reject(err);
          else resolve(m as Extract<Out, { type: T }>);
        }
        listeners.add(listener);
        proc.once("exit", onExit);
      });
    },
  };
}

function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    proc.once("exit", () => {
      clearTimeout(timer);
      done();
    });
    proc.kill("SIGTERM");
  });
}

// ---------------------------------------------------------------------------------------------------------
// Clean-up (also on SIGINT, through bench/run.ts)

const running = new Set<ServerProcess>();
const cleanups: (() => Promise<void>)[] = [];

/** Stops the watcher and writer processes, the service, the database of a run still going (on SIGINT). */
export async function cleanUp(): Promise<void> {
  await Promise.all([...children].map(stopChild));
  await Promise.all([...running].map((s) => s.stop()));
  running.clear();
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
}

// ---------------------------------------------------------------------------------------------------------
// One phase

interface Context {
  env: ServerEnv;
  token: string;
  db: pg.Client;
  targets: WriteTarget[];
  /** One target per team, for the warm-up. */
  warmupTargets: WriteTarget[];
  teams: string[];
  processes: number;
  streamsPerConnection: number;
  drainSeconds: number;
  /** The embedded PostgreSQL's data directory (for its CPU), or undefined. */
  pgDataDir: string | undefined;
}

interface CpuSnapshot {
  at: number;
  server: number;
  watchers: number;
  writer: number;
  parent: number;
  postgres: number | undefined;
  machine: { busy: number; total: number };
}

interface WatcherCheck {
  id: number;
  filter: string;
  expected: number;
  received: number;
  missing: number;
  firstMissing: number;
  unexpected: number;
  duplicates: number;
  malformed: number;
}

/** The changes of a phase's writes in the change log: which write numbers committed, and per team. */
async function changeLog(db: pg.Client, runId: string, writes: number) {
  const { rows } = await db.query<{ n: string; team: string | null; previous_team: string | null }>(
    `select snapshot->'labels'->>'bench_n' as n,
            snapshot->'labels'->>'team' as team,
            previous->'labels'->>'team' as previous_team
       from user_changes
      where seq is not null and type = 'updated' and snapshot->'labels'->>'bench_run' = $1`,
    [runId],
  );
  const committed = newBits(writes);
  const byTeam = new Map<string, Uint8Array>();
  let duplicates = 0;
  let malformed = 0;
  const add = (team: string | null, n: number) => {
    if (team === null) return;
    const bits = byTeam.get(team) ?? newBits(writes);
    byTeam.set(team, bits);
    setBit(bits, n);
  };
  for (const r of rows) {
    const n = Number(r.n);
    if (!Number.isInteger(n) || n < 0 || n >= writes) {
      malformed++;
      continue;
    }
    if (hasBit(committed, n)) duplicates++;
    setBit(committed, n);
    add(r.team, n);
    if (r.previous_team !== r.team) add(r.previous_team, n);
  }
  return { committed, byTeam, rows: rows.length, duplicates, malformed };
}

async function runPhase(spec: PhaseSpec, ctx: Context) {
  const runId = `${spec.key}-${randomUUID().slice(0, 8)}`;
  const writes = Math.round(spec.rate * spec.seconds);
  const specs: (WatcherSpec & { team: string | undefined })[] = [];
  for (let i = 0; i < spec.all; i++) specs.push({ id: i, filter: "", team: undefined });
  for (let j = 0; j < spec.filtered; j++) {
    const team = ctx.teams[j % ctx.teams.length];
    specs.push({ id: spec.all + j, filter: `labels.team = "${team}"`, team });
  }
  const total = specs.length;

  const server = await startServer("service", ctx.env);
  running.add(server);
  try {
    await sleep(300);
    const idleRss = rssNow(server.pid);

    // Watchers: process p holds the watchers whose id is p modulo the number of processes.
    log(`${spec.key}: opening ${spec.all} + ${spec.filtered} watchers in ${ctx.processes} processes`);
    const watcherProcs = Array.from({ length: ctx.processes }, (_, p) => {
      const child = spawnChild<WatchersProgress | WatchersResult>("fanout-watchers.ts", {});
      const mine = specs.filter((s) => s.id % ctx.processes === p).map(({ id, filter }) => ({ id, filter }));
      const state = {
        progress: { type: "progress", ready: 0, received: 0, failed: 0, resumes: 0 } as WatchersProgress,
      };
      child.onMessage((m) => {
        if (m.type === "progress") state.progress = m;
      });
      const start: WatchersStart = {
        type: "start",
        baseUrl: server.origin,
        token: ctx.token,
        runId,
        writes,
        streamsPerConnection: ctx.streamsPerConnection,
        watchers: mine,
      };
      child.send(start);
      return { child, state };
    });
    const progress = () =>
      watcherProcs.reduce(
        (a, w) => ({
          ready: a.ready + w.state.progress.ready,
          received: a.received + w.state.progress.received,
          failed: a.failed + w.state.progress.failed,
          resumes: a.resumes + w.state.progress.resumes,
        }),
        { ready: 0, received: 0, failed: 0, resumes: 0 },
      );
    const collect = () =>
      Promise.all(
        watcherProcs.map((w) => {
          const result = w.child.next("result", 60_000);
          w.child.send({ type: "finish" });
          return result;
        }),
      );
    const writer = spawnChild<WriterWarmed | WriterResult>("fanout-writer.ts", {
      FANOUT_BASE_URL: server.origin,
      FANOUT_TOKEN: ctx.token,
    });

    // Warm-up: one write per team, again and again, until every watcher has received one.
    const opening = performance.now();
    for (;;) {
      const warmed = writer.next("warmed", 120_000);
      writer.send({ type: "warmup", targets: ctx.warmupTargets } satisfies WriterWarmup);
      const { failures } = await warmed;
      if (failures.length > 0) throw new Error(`warm-up writes failed: ${failures.join("; ")}`);
      await sleep(200);
      const p = progress();
      if (p.failed > 0) {
        const errors = (await collect()).flatMap((r) => r.errors);
        throw new Error(`${p.failed} watchers failed while opening: ${errors.slice(0, 5).join("; ")}`);
      }
      if (p.ready >= total) break;
      if (performance.now() - opening > 120_000)
        throw new Error(`only ${p.ready} of ${total} watchers ready after 120 s`);
    }
    const openSeconds = (performance.now() - opening) / 1000;
    log(
      `${spec.key}: all watchers receiving after ${fmt(openSeconds, 1)} s; ${spec.rate} writes/s for ${spec.seconds} s`,
    );
    await sleep(1000);

    // Measured period.
    const snapshot = (): CpuSnapshot => ({
      at: performance.now(),
      server: server.cpuSeconds(),
      watchers: watcherProcs.reduce((a, w) => a + cpuOf(w.child.proc.pid as number), 0),
      writer: cpuOf(writer.proc.pid as number),
      parent: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
      postgres: ctx.pgDataDir ? postgresCpu(ctx.pgDataDir) : undefined,
      machine: machineTicks(),
    });
    const rssWithWatchers = rssNow(server.pid);
    const scraper = scrapeMetrics(server.origin, 1000);
    let peakRssDuring = rssWithWatchers;
    const rssTimer = setInterval(() => (peakRssDuring = Math.max(peakRssDuring, rssNow(server.pid))), 200);
    const cpu0 = snapshot();
    const result = writer.next("result", (spec.seconds + 120) * 1000);
    writer.send({ type: "run", runId, rate: spec.rate, writes, targets: ctx.targets } satisfies WriterRun);
    const w = await result;
    const cpu1 = snapshot();
    clearInterval(rssTimer);
    const metrics = await scraper.stop();
    log(
      `${spec.key}: ${fmt(w.okCount)} of ${fmt(writes)} writes OK; draining (up to ${ctx.drainSeconds} s) ` +
        `after ${fmt(progress().received)} events`,
    );

    // What should have arrived, from the change log.
    const logged = await changeLog(ctx.db, runId, writes);
    const expectedOf = (team: string | undefined) =>
      team === undefined ? logged.committed : (logged.byTeam.get(team) ?? newBits(writes));
    const expectedTotal = specs.reduce((a, s) => a + countBits(expectedOf(s.team)), 0);

    // Drain: until every expected event is in, the drain time is over, or nothing moves for a while.
    const draining = performance.now();
    let last = -1;
    let lastMove = draining;
    for (;;) {
      const p = progress();
      if (p.received >= expectedTotal) break;
      if (p.received !== last) {
        last = p.received;
        lastMove = performance.now();
      }
      if (performance.now() - draining > ctx.drainSeconds * 1000 || performance.now() - lastMove > DRAIN_STALL_MS)
        break;
      await sleep(100);
    }
    const drainSeconds = (performance.now() - draining) / 1000;
    const results = await collect();
    await stopChild(writer.proc);

    // Check every watcher against the change log.
    const bySpec = new Map(specs.map((s) => [s.id, s]));
    const checks: WatcherCheck[] = results.flatMap((r) =>
      r.watchers.map((o) => {
        const s = bySpec.get(o.id) as (typeof specs)[number];
        const expected = expectedOf(s.team);
        const seen = bitsFromBase64(o.seen);
        const miss = difference(expected, seen);
        return {
          id: o.id,
          filter: s.filter,
          expected: countBits(expected),
          received: o.received,
          missing: miss.count,
          firstMissing: miss.first,
          unexpected: difference(seen, expected).count,
          duplicates: o.duplicates,
          malformed: o.malformed,
        };
      }),
    );
    const ok = bitsFromBase64(w.ok);
    const acknowledgedNotLogged = difference(ok, logged.committed);
    const loggedNotAcknowledged = difference(logged.committed, ok).count;
    const sum = (f: (c: WatcherCheck) => number, only?: (c: WatcherCheck) => boolean) =>
      checks.filter(only ?? (() => true)).reduce((a, c) => a + f(c), 0);
    const range = (only: (c: WatcherCheck) => boolean) => {
      const xs = checks.filter(only);
      return xs.length === 0
        ? undefined
        : {
            watchers: xs.length,
            delivered: sum((c) => c.received - c.duplicates, only),
            expected: sum((c) => c.expected, only),
            minExpected: Math.min(...xs.map((c) => c.expected)),
            maxExpected: Math.max(...xs.map((c) => c.expected)),
            minDelivered: Math.min(...xs.map((c) => c.received - c.duplicates)),
            maxDelivered: Math.max(...xs.map((c) => c.received - c.duplicates)),
          };
    };

    const failed = Object.values(w.failuresByCode).reduce((a, b) => a + b, 0);
    const windowSeconds = Math.max(w.lastDoneMs / 1000, spec.seconds);
    const achievedRate = w.okCount / windowSeconds;
    // The steady rate: OK answers in each full second after the first (which holds the latency's ramp-up), so a
    // constant latency offset does not read as a lower rate, while a growing backlog does.
    const steadySeconds = Array.from(
      { length: Math.max(0, Math.floor(spec.seconds) - 1) },
      (_, i) => w.okPerSecond[i + 1] ?? 0,
    );
    const steadyRate =
      steadySeconds.length >= 2 ? steadySeconds.reduce((a, b) => a + b, 0) / steadySeconds.length : achievedRate;
    const elapsed = (cpu1.at - cpu0.at) / 1000;
    const cores = (seconds: number) => seconds / elapsed;
    const machineCores =
      ((cpu1.machine.busy - cpu0.machine.busy) / (cpu1.machine.total - cpu0.machine.total)) * availableParallelism();
    const postgresCores =
      cpu0.postgres !== undefined && cpu1.postgres !== undefined ? cores(cpu1.postgres - cpu0.postgres) : undefined;
    const ours =
      cores(cpu1.server - cpu0.server) +
      cores(cpu1.watchers - cpu0.watchers) +
      cores(cpu1.writer - cpu0.writer) +
      cores(cpu1.parent - cpu0.parent) +
      (postgresCores ?? 0);
    const commitAll = mergeHistograms(results.map((r) => r.commitAll));
    const commitFiltered = mergeHistograms(results.map((r) => r.commitFiltered));
    const commitAny = mergeHistograms(results.flatMap((r) => [r.commitAll, r.commitFiltered]));
    const fromSent = mergeHistograms(results.map((r) => r.fromSent));
    const writeLatency = mergeHistograms([w.latency]);

    const correctness = {
      missing: sum((c) => c.missing),
      unexpected: sum((c) => c.unexpected),
      duplicates: sum((c) => c.duplicates),
      malformed: sum((c) => c.malformed),
      watchersMissing: checks.filter((c) => c.missing > 0).length,
    };
    const problems: string[] = [];
    if (logged.rows === 0) problems.push("no write of the phase committed: nothing was verified");
    if (correctness.missing > 0)
      problems.push(
        `${fmt(correctness.missing)} events missing at ${fmt(correctness.watchersMissing)} watchers (not received within the ${fmt(drainSeconds, 1)} s drain), e.g. ` +
          checks
            .filter((c) => c.missing > 0)
            .slice(0, 3)
            .map(
              (c) =>
                `watcher ${c.id} (${c.filter || "no filter"}): ${c.missing} of ${c.expected}, first write ${c.firstMissing}`,
            )
            .join("; "),
      );
    if (correctness.unexpected > 0)
      problems.push(
        `${fmt(correctness.unexpected)} events delivered to a watcher whose filter does not match, or of a write not in the change log`,
      );
    if (correctness.duplicates > 0)
      problems.push(`${fmt(correctness.duplicates)} events delivered twice to the same watcher`);
    if (correctness.malformed > 0)
      problems.push(`${fmt(correctness.malformed)} events of the phase with an unreadable write number`);
    if (acknowledgedNotLogged.count > 0)
      problems.push(
        `${acknowledgedNotLogged.count} acknowledged writes are not in the change log (e.g. write ${acknowledgedNotLogged.first})`,
      );
    if (logged.duplicates > 0 || logged.malformed > 0)
      problems.push(
        `the change log holds ${logged.duplicates} duplicate and ${logged.malformed} unreadable rows of the phase`,
      );
    const streamErrors = results.flatMap((r) => r.errors);
    if (streamErrors.length > 0) problems.push(`watcher errors: ${streamErrors.slice(0, 5).join("; ")}`);

    const phase = {
      spec,
      runId,
      writes,
      openSeconds,
      writer: {
        ok: w.okCount,
        failed,
        failuresByCode: w.failuresByCode,
        firstFailures: w.firstFailures,
        unavailable: w.failuresByCode.UNAVAILABLE ?? 0,
        achievedRate,
        windowSeconds,
        steadyRate,
        slowestSecond: steadySeconds.length >= 2 ? Math.min(...steadySeconds) : Number.NaN,
        latency: writeLatency,
        maxSendLagMs: w.maxSendLagMs,
        lastSendMs: w.lastSendMs,
        loggedNotAcknowledged,
      },
      delivery: {
        expectedTotal,
        all: range((c) => c.filter === ""),
        filtered: range((c) => c.filter !== ""),
        ...correctness,
        drainSeconds,
        commitAll,
        commitFiltered,
        commitAny,
        fromSent,
        connections: results.reduce((a, r) => a + r.connections, 0),
        resumes: results.reduce((a, r) => a + r.resumes, 0),
        reconnects: results.reduce((a, r) => a + r.reconnects, 0),
        checked: results.reduce((a, r) => a + r.checked, 0),
        streamErrors,
      },
      cpu: {
        server: cores(cpu1.server - cpu0.server) * 100,
        watchers: cores(cpu1.watchers - cpu0.watchers) * 100,
        watchersReported: results.reduce((a, r) => a + r.cpuSeconds, 0),
        writer: cores(cpu1.writer - cpu0.writer) * 100,
        parent: cores(cpu1.parent - cpu0.parent) * 100,
        postgres: postgresCores === undefined ? undefined : postgresCores * 100,
        machine: machineCores * 100,
        others: Math.max(0, machineCores - ours) * 100,
      },
      memory: { idleRss, rssWithWatchers, peakRssDuring, vmHwm: server.peakRss() },
      metrics: summarizeMetrics(metrics.samples, metrics.failures),
      problems,
    };
    log(
      `${spec.key}: delivered ${fmt(phase.delivery.commitAny.count)} of ${fmt(expectedTotal)} expected events, ` +
        `${fmt(correctness.missing)} missing; commit->delivery p99 ${fmt(commitAny.p(99), 1)} ms; ` +
        `writes ${fmt(steadyRate, 1)}/s of ${spec.rate}, ${failed} failed; server CPU ${fmt(phase.cpu.server)} %`,
    );
    return phase;
  } catch (err) {
    const output = server.output().trim();
    throw new Error(
      `${spec.key}: ${err instanceof Error ? err.message : String(err)}${output ? `\nserver output (tail):\n${output}` : ""}`,
    );
  } finally {
    await Promise.all([...children].map(stopChild));
    await server.stop();
    running.delete(server);
  }
}

type Phase = Awaited<ReturnType<typeof runPhase>>;

function summarizeMetrics(samples: MetricsSample[], failures: number) {
  const finite = (xs: number[]) => xs.filter(Number.isFinite);
  const median = (xs: number[]) => {
    const s = finite(xs).sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN;
  };
  const max = (xs: number[]) => (finite(xs).length ? Math.max(...finite(xs)) : Number.NaN);
  const min = (xs: number[]) => (finite(xs).length ? Math.min(...finite(xs)) : Number.NaN);
  return {
    samples: samples.length,
    failures,
    lagP50: median(samples.map((s) => s.lagP50)),
    lagP99: median(samples.map((s) => s.lagP99)),
    lagP99Worst: max(samples.map((s) => s.lagP99)),
    lagMax: max(samples.map((s) => s.lagMax)),
    ormInUseMax: max(samples.map((s) => s.ormInUse)),
    ormWaitingMax: max(samples.map((s) => s.ormWaiting)),
    ormWaitingSamples: samples.filter((s) => s.ormWaiting > 0).length,
    queriesInUseMax: max(samples.map((s) => s.queriesInUse)),
    queriesWaitingMax: max(samples.map((s) => s.queriesWaiting)),
    watchStreamsMin: min(samples.map((s) => s.watchStreams)),
  };
}

// ---------------------------------------------------------------------------------------------------------
// The scenario

/** `fanout`: WatchUsers fan-out under 200 UpdateUser/s, then pushed further (issue 14, item 4). */
export async function fanout(): Promise<string> {
  try {
    return await measureFanout();
  } finally {
    await cleanUp();
  }
}

async function measureFanout(): Promise<string> {
  const loadAverage = loadavg()[0];
  const users = positive("BENCH_FANOUT_USERS", 100_000);
  const streamsPerConnection = positive("BENCH_FANOUT_STREAMS_PER_CONNECTION", 50);
  const streamCap = Number(process.env.H2_MAX_CONCURRENT_STREAMS || 100);
  if (streamsPerConnection > streamCap)
    throw new Error(
      `BENCH_FANOUT_STREAMS_PER_CONNECTION (${streamsPerConnection}) is above the service's H2_MAX_CONCURRENT_STREAMS (${streamCap})`,
    );
  const phases: PhaseSpec[] = [
    {
      key: "main",
      title: "Fan-out: 20 + 980 filtered watchers, 200 writes/s",
      rate: positive("BENCH_FANOUT_RATE", 200),
      seconds: positive("BENCH_FANOUT_SECONDS", 60),
      all: nonNegativeInt("BENCH_FANOUT_ALL", 20),
      filtered: nonNegativeInt("BENCH_FANOUT_FILTERED", 980),
    },
  ];
  if (onOff("BENCH_FANOUT_PUSH", true)) {
    phases.push({
      key: "push",
      title: "Pushed further: 1,000 watchers of everything, 100 writes/s",
      rate: positive("BENCH_FANOUT_PUSH_RATE", 100),
      seconds: positive("BENCH_FANOUT_PUSH_SECONDS", 30),
      all: positive("BENCH_FANOUT_PUSH_WATCHERS", 1000),
      filtered: 0,
    });
  }
  for (const p of phases) {
    if (p.all + p.filtered === 0) throw new Error(`${p.key}: no watchers`);
    p.title = `${fmt(p.all)} watchers of every change${p.filtered ? ` + ${fmt(p.filtered)} with a team filter` : ""}, ${fmt(p.rate)} writes/s for ${fmt(p.seconds)} s`;
  }
  const syncCommit = onOff("BENCH_FANOUT_SYNC_COMMIT", false) ? "on" : "off";
  const poolMax = process.env.DB_POOL_MAX || "10";

  const work = mkdtempSync(join(tmpdir(), "user-service-bench-fanout-"));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  let pgDataDir: string | undefined;
  if (!databaseUrl) {
    const embedded = await startEmbeddedPostgres(work, log);
    cleanups.push(() => embedded.stop());
    databaseUrl = embedded.url;
    pgDataDir = join(work, "postgres");
  }
  const seeding = performance.now();
  await seed(databaseUrl, users);
  log(`seeded ${users} users in ${Math.round(performance.now() - seeding)} ms`);

  const env: ServerEnv = {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(48).toString("base64url"),
    JWT_ISSUER: process.env.JWT_ISSUER || "user-service",
    JWT_AUDIENCE: process.env.JWT_AUDIENCE || "user-service",
    DB_POOL_MAX: poolMax,
  };
  const token = benchAdminToken(env, 12 * 3600);

  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const database = db.escapeIdentifier((await db.query<{ d: string }>("select current_database() as d")).rows[0].d);
  // Every write appends to the change log under one lock held through its commit, so with synchronous_commit
  // on, the disk's flush time bounds the write rate (well under 100/s on this machine's disk; see
  // bench/streams). The fan-out is what is measured: commits do not wait for the disk unless asked.
  await db.query(`alter database ${database} set synchronous_commit = ${syncCommit}`);
  cleanups.push(async () => {
    await db.query(`alter database ${database} reset synchronous_commit`).catch(() => {});
    await db.end();
  });
  const version = (await db.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;

  // The users written to, with their labels as seeded (bench labels of an earlier run dropped).
  const ids = Array.from({ length: Math.min(users, TARGET_USERS) }, (_, i) => benchUserId(i));
  const { rows } = await db.query<{ id: string; labels: Record<string, string> }>(
    "select id::text, labels from users where id = any($1::uuid[]) and delete_time is null order by id",
    [ids],
  );
  const targets: WriteTarget[] = rows.map((r) => ({
    id: r.id,
    labels: Object.fromEntries(Object.entries(r.labels).filter(([k]) => !k.startsWith("bench_"))),
  }));
  const teams = [...new Set(targets.map((t) => t.labels.team).filter((t) => t !== undefined))].sort(
    (a, b) => Number(a.replace(/\D/g, "")) - Number(b.replace(/\D/g, "")),
  );
  if (targets.length === 0 || teams.length === 0) throw new Error("no seeded users with a team label to write to");
  const warmupTargets = teams.map((team) => targets.find((t) => t.labels.team === team) as WriteTarget);

  const ctx: Context = {
    env,
    token,
    db,
    targets,
    warmupTargets,
    teams,
    processes: positive("BENCH_FANOUT_PROCESSES", 2),
    streamsPerConnection,
    drainSeconds: positive("BENCH_FANOUT_DRAIN_SECONDS", 30),
    pgDataDir,
  };
  const results: Phase[] = [];
  for (const spec of phases) results.push(await runPhase(spec, ctx));

  const report = render(
    {
      date: new Date().toISOString().slice(0, 16).replace("T", " "),
      commit: gitCommit(),
      node: process.version,
      cpus: availableParallelism(),
      loadAverage,
      postgres: version,
      database: process.env.BENCH_DATABASE_URL ? "BENCH_DATABASE_URL" : "embedded",
      users,
      targets: targets.length,
      teams: teams.length,
      poolMax,
      syncCommit,
      streamCap,
      streamsPerConnection,
      processes: ctx.processes,
    },
    results,
  );
  const problems = results.flatMap((r) => r.problems.map((p) => `${r.spec.key}: ${p}`));
  if (problems.length > 0) {
    // bench/run.ts writes a scenario's report only when it succeeds: this one must be read when it fails.
    writeFileSync(join(repoRoot, "bench/results/fanout.md"), report);
    process.stdout.write(`\n${report}`);
    throw new Error(`wrong answers (report in bench/results/fanout.md):\n${problems.join("\n")}`);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------------------
// Report

interface RunInfo {
  date: string;
  commit: string;
  node: string;
  cpus: number;
  loadAverage: number;
  postgres: string;
  database: string;
  users: number;
  targets: number;
  teams: number;
  poolMax: string;
  syncCommit: string;
  streamCap: number;
  streamsPerConnection: number;
  processes: number;
}

const mark = (ok: boolean) => (ok ? "met" : "**not met**");
const ms = (n: number) => fmt(n, 1);
const pcts = (l: LatencySummary) => `${ms(l.p(50))} / ${ms(l.p(99))} / ${ms(l.max)}`;

function goals(p: Phase, poolMax: string) {
  const p99 = p.delivery.commitAny.p(99);
  return [
    {
      goal: "no failed write",
      met: p.writer.failed === 0,
      value:
        p.writer.failed === 0
          ? `0 of ${fmt(p.writes)}`
          : `${fmt(p.writer.failed)} of ${fmt(p.writes)} (${Object.entries(p.writer.failuresByCode)
              .map(([c, n]) => `${c} ${fmt(n)}`)
              .join(", ")})`,
    },
    {
      goal: `write rate held (>= ${RATE_HELD * 100} % of target)`,
      met: p.writer.steadyRate >= RATE_HELD * p.spec.rate,
      value: `${fmt(p.writer.steadyRate, 1)} / ${fmt(p.spec.rate)} per s (${fmt((p.writer.steadyRate / p.spec.rate) * 100, 1)} %)`,
    },
    {
      goal: "pool never starved (no UNAVAILABLE)",
      met: p.writer.unavailable === 0,
      value: `${fmt(p.writer.unavailable)} UNAVAILABLE; UpdateUser p99 ${ms(p.writer.latency.p(99))} ms; ORM pool ${fmt(p.metrics.ormInUseMax)}/${poolMax} in use, ${fmt(p.metrics.ormWaitingMax)} waiting at most`,
    },
    {
      goal: "no missing event",
      met: p.delivery.missing === 0 && p.delivery.unexpected === 0 && p.delivery.duplicates === 0,
      value: `${fmt(p.delivery.missing)} missing, ${fmt(p.delivery.duplicates)} duplicate, ${fmt(p.delivery.unexpected)} unexpected of ${fmt(p.delivery.expectedTotal)}`,
    },
    {
      goal: `commit -> delivery p99 <= ${P99_GOAL_MS} ms`,
      met: p99 <= P99_GOAL_MS,
      value: `${ms(p99)} ms`,
    },
  ];
}

/** What the numbers say about the limits in a phase: where the CPU went, the event loop, the pool. */
function reading(p: Phase, cpus: number): string[] {
  const m = p.metrics;
  const out = [
    `CPU during the writes: server ${fmt(p.cpu.server)} % of one core, watchers ${fmt(p.cpu.watchers)} %, writer ${fmt(p.cpu.writer)} %, ` +
      `PostgreSQL ${p.cpu.postgres === undefined ? "n/a" : `${fmt(p.cpu.postgres)} %`}, other processes on the machine ${fmt(p.cpu.others)} %; ` +
      `the machine was ${fmt(p.cpu.machine)} % of ${cpus * 100} % busy${p.cpu.machine >= cpus * 100 * 0.9 ? " (no idle CPU left)" : ""}.`,
  ];
  if (p.cpu.server >= 85)
    out.push(`The service's process used about the one core its event loop can use (${fmt(p.cpu.server)} %).`);
  out.push(
    `Event-loop delay: p50 ${ms(m.lagP50)} ms, p99 ${ms(m.lagP99)} ms (medians of per-second values), worst ${ms(m.lagMax)} ms.`,
  );
  out.push(
    m.ormWaitingMax > 0
      ? `Writes queued for the ORM pool in ${m.ormWaitingSamples} of ${m.samples} scrapes (up to ${fmt(m.ormWaitingMax)} waiting, ${fmt(m.ormInUseMax)} connections in use)${p.writer.unavailable > 0 ? `; ${fmt(p.writer.unavailable)} gave up (UNAVAILABLE)` : ", none long enough to fail"}.`
      : `The ORM pool never had a waiter in ${m.samples} scrapes (at most ${fmt(m.ormInUseMax)} connections in use).`,
  );
  if (p.writer.maxSendLagMs > 50)
    out.push(`The writer itself fell ${ms(p.writer.maxSendLagMs)} ms behind its schedule at worst (a busy machine).`);
  return out;
}

function render(info: RunInfo, phases: Phase[]): string {
  const out: string[] = ["# WatchUsers fan-out", ""];
  out.push(
    `${info.date}, commit ${info.commit}, Node ${info.node}, ${info.cpus} CPUs (load average ${fmt(info.loadAverage, 2)} before the run), ` +
      `PostgreSQL ${info.postgres} (${info.database}, synchronous_commit = ${info.syncCommit}). ${fmt(info.users)} users seeded; ` +
      `the writes go to ${fmt(info.targets)} of them, ${fmt(info.targets / info.teams)} in each of ${info.teams} teams.`,
    `One service process per phase (the server bundle, LOG_LEVEL=warn, DB_POOL_MAX=${info.poolMax}, H2_MAX_CONCURRENT_STREAMS=${info.streamCap}); ` +
      `watchers in ${info.processes} child processes, ${info.streamsPerConnection} streams per HTTP/2 connection; the writer in its own child process.`,
    "Everything shares this machine's cores (and other work on it: see *other processes*): latency and CPU numbers",
    "are this machine's, not a capacity figure.",
    "",
    "## Goals (issue 14)",
    "",
    `| goal | ${phases.map((p) => (p.spec.key === "main" ? "fan-out (the goal)" : "pushed further (the limit)")).join(" | ")} |`,
    `|---|${phases.map(() => "---").join("|")}|`,
  );
  const table = phases.map((p) => goals(p, info.poolMax));
  for (let i = 0; i < table[0].length; i++) {
    out.push(`| ${table[0][i].goal} | ${table.map((g) => `${mark(g[i].met)}: ${g[i].value}`).join(" | ")} |`);
  }
  out.push("");
  if (phases.some((p) => p.problems.length > 0)) {
    out.push("## FAILED: wrong answers", "");
    for (const p of phases) for (const problem of p.problems) out.push(`- ${p.spec.key}: ${problem}`);
    out.push("");
  }

  out.push(
    "## Numbers",
    "",
    `| | ${phases.map((p) => p.spec.title).join(" | ")} |`,
    `|---|${phases.map(() => "--:").join("|")}|`,
  );
  const row = (label: string, f: (p: Phase) => string) => out.push(`| ${label} | ${phases.map(f).join(" | ")} |`);
  const range = (r: Phase["delivery"]["all"]) =>
    r
      ? `${fmt(r.delivered)} / ${fmt(r.expected)} (${fmt(r.watchers)} watchers, each ${fmt(r.minDelivered)}..${fmt(r.maxDelivered)} of ${fmt(r.minExpected)}..${fmt(r.maxExpected)})`
      : "—";
  row("watchers (connections)", (p) => `${fmt(p.spec.all + p.spec.filtered)} (${fmt(p.delivery.connections)})`);
  row("time until every watcher had an event", (p) => `${fmt(p.openSeconds, 1)} s`);
  row("writes sent / OK / failed", (p) => `${fmt(p.writes)} / ${fmt(p.writer.ok)} / ${fmt(p.writer.failed)}`);
  row(
    "OK writes / s, from the first due time to the last answer",
    (p) => `${fmt(p.writer.achievedRate, 1)} of ${fmt(p.spec.rate)} (over ${fmt(p.writer.windowSeconds, 1)} s)`,
  );
  row(
    "steady write rate (OK answers per full second after the first) / slowest second",
    (p) => `${fmt(p.writer.steadyRate, 1)} / ${fmt(p.writer.slowestSecond)}`,
  );
  row("UpdateUser p50 / p99 / max ms (all calls)", (p) => pcts(p.writer.latency));
  row("writer's worst lag behind schedule", (p) => `${ms(p.writer.maxSendLagMs)} ms`);
  row("failed writes committed anyway", (p) => fmt(p.writer.loggedNotAcknowledged));
  row("events delivered / expected, no filter", (p) => range(p.delivery.all));
  row("events delivered / expected, team filter", (p) => range(p.delivery.filtered));
  row(
    "missing / duplicate / unexpected",
    (p) => `${fmt(p.delivery.missing)} / ${fmt(p.delivery.duplicates)} / ${fmt(p.delivery.unexpected)}`,
  );
  row("commit -> delivery p50 / p99 / max ms, all watchers", (p) => pcts(p.delivery.commitAny));
  row("… watchers without a filter", (p) => (p.delivery.commitAll.count ? pcts(p.delivery.commitAll) : "—"));
  row("… watchers with a filter", (p) => (p.delivery.commitFiltered.count ? pcts(p.delivery.commitFiltered) : "—"));
  row("write sent -> delivery p50 / p99 / max ms", (p) => pcts(p.delivery.fromSent));
  row("drain after the last write answered", (p) => `${fmt(p.delivery.drainSeconds, 1)} s`);
  row("stream resumes / reconnects", (p) => `${fmt(p.delivery.resumes)} / ${fmt(p.delivery.reconnects)}`);
  row("server CPU (% of one core)", (p) => `${fmt(p.cpu.server)} %`);
  row(
    "watcher processes / writer / PostgreSQL CPU",
    (p) =>
      `${fmt(p.cpu.watchers)} % / ${fmt(p.cpu.writer)} % / ${p.cpu.postgres === undefined ? "n/a" : `${fmt(p.cpu.postgres)} %`}`,
  );
  row(
    `machine busy (of ${info.cpus * 100} %) / other processes`,
    (p) => `${fmt(p.cpu.machine)} % / ${fmt(p.cpu.others)} %`,
  );
  row(
    "server RSS idle / with watchers / peak during writes / VmHWM MB",
    (p) =>
      `${mb(p.memory.idleRss)} / ${mb(p.memory.rssWithWatchers)} / ${mb(p.memory.peakRssDuring)} / ${mb(p.memory.vmHwm)}`,
  );
  row(
    "event-loop delay p50 / p99 / max ms",
    (p) => `${ms(p.metrics.lagP50)} / ${ms(p.metrics.lagP99)} / ${ms(p.metrics.lagMax)}`,
  );
  row(
    `ORM pool in use (max of ${info.poolMax}) / waiting max (scrapes with waiters)`,
    (p) =>
      `${fmt(p.metrics.ormInUseMax)} / ${fmt(p.metrics.ormWaitingMax)} (${p.metrics.ormWaitingSamples} of ${p.metrics.samples})`,
  );
  row(
    "query pool in use max / waiting max",
    (p) => `${fmt(p.metrics.queriesInUseMax)} / ${fmt(p.metrics.queriesWaitingMax)}`,
  );
  row("lean decoder cross-checks", (p) => `${fmt(p.delivery.checked)} messages, all equal`);
  out.push("");

  out.push("## Reading", "");
  for (const p of phases) {
    out.push(`- **${p.spec.key === "main" ? "Fan-out" : "Pushed further"}.** ${reading(p, info.cpus).join(" ")}`);
    if (p.writer.firstFailures.length > 0)
      out.push(`  First failed writes: ${p.writer.firstFailures.slice(0, 3).join("; ")}.`);
  }
  out.push(
    "",
    "## How it is measured",
    "",
    "- **Writes.** UpdateUser over gRPC (connect-node, HTTP/2) from a child process, open-loop on a fixed schedule (write",
    "  n at start + n / rate, whatever earlier writes are doing), each replacing a user's labels with its own plus",
    "  `bench_run` (the phase), `bench_n` (the write's number) and `bench_sent`; the user's `team` label is kept, so a",
    "  filtered watcher's filter matches the user before and after. Achieved rate: OK writes over the time from the first",
    "  write's due time to the last answer (at least the phase's length). UpdateUser latency is send -> answer, failed",
    "  calls included.",
    "- **Expected events.** From the change log after the writes: the rows of the phase (`bench_run`), each with its",
    "  user's team before and after. A watcher without a filter expects every one; a watcher with",
    '  `labels.team = "team-K"` those whose user is in team K before or after the change. A watcher records which',
    "  write numbers it received; missing = expected but not received within the drain, unexpected = received but not",
    "  expected, duplicate = received twice. Every acknowledged write must be in the change log.",
    "- **Latency.** In the watcher processes (same machine, same clock): commit -> delivery from the event's",
    "  `event_time` (the change row's `change_time`, stamped by PostgreSQL as the write commits; millisecond",
    "  precision on the wire) to the moment its HTTP/2 data arrived; write sent -> delivery from `bench_sent`.",
    "- **Watchers.** A lean gRPC client on node:http2 (the framing read by hand, only the needed fields of each",
    "  message walked; the first 200 messages of each process are also decoded by the generated code and compared),",
    "  so the watchers' CPU is small next to the service's. A stream ended with UNAVAILABLE, or whose connection",
    "  drops, is resumed from its last resume_token (counted as a resume); any other end is an error.",
    "- **Service side.** CPU from /proc over the write period; event-loop delay and pool use from `GET /metrics`",
    "  every second (prom-client's per-interval event-loop histogram; the table gives the median p50 and p99 of",
    "  those intervals, and the largest max).",
    "",
  );
  return out.join("\n");
}
