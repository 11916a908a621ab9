/**
 * `npm run bench:streams`: lists, streams and the change feed (issue 4's benchmarks) in one invocation.
 *
 * 1. PostgreSQL (embedded under the OS temp directory, or BENCH_DATABASE_URL) gets the service's
 *    migrations and N realistic users (seed.ts), then ANALYZE.
 * 2. StreamUsers: every live user over gRPC (grpc-js, counting users only) against a plain `pg` cursor
 *    (DECLARE CURSOR, FETCH 500) over the same rows and columns, cursor before and after the service.
 * 3. ListUsers: sequential requests for a few filters and orders, pages of 100, following page tokens;
 *    p50/p99, and EXPLAIN ANALYZE of the statements the service runs for each.
 * 4. ImportUsers: M rows with pre-hashed (argon2id PHC) passwords over gRPC, against `COPY ... FROM
 *    STDIN` of the same rows (other ids and emails of the same length) into the same table.
 * 5. WatchUsers: W watchers (child processes, C HTTP/2 connections each) on one service process while the
 *    bench writes UpdateUser through the service every 10 ms; latency from the write to delivery.
 *
 * Every section starts a fresh service process (the server bundle, as deployed), so its peak RSS is that section's.
 * The report is printed and written to bench/streams/results/latest.md. Environment: see README.md.
 */
import { fork } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { hash as argon2Hash } from "@node-rs/argon2";
import pg from "pg";
import { ImportUsersRequestSchema, UserService } from "../../gen/user/v1/user_service_pb.js";
import { startEmbeddedPostgres } from "../../src/db/embedded-postgres.ts";
import {
  cursorFromRow,
  filterSql,
  ID_ORDER,
  keysetSql,
  orderBySql,
  parseFilter,
  parseOrderBy,
  sortKeySelect,
  toSql,
} from "../../src/users/list/index.ts";
import { userColumns } from "../../src/users/user.record.ts";
import { benchAdminToken } from "../seed.ts";
import { gitCommit, repoRoot, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";
import { copyFrom, copyText } from "./copy.ts";
import { seedUsers } from "./seed.ts";
import { BUCKET_MS, type WatchersProgress, type WatchersResult } from "./watchers.ts";
import { importUsers, streamAllUsers } from "./wire.ts";

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: "${raw}" is not a positive number`);
  return n;
}

const log = (line: string) => process.stderr.write(`bench:streams: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mb = (bytes: number) => fmt(bytes / 2 ** 20);

const SECTIONS = ["stream", "list", "import", "watch"] as const;
type Section = (typeof SECTIONS)[number];

const config = {
  users: positive("BENCH_USERS", 1_000_000),
  importRows: positive("BENCH_IMPORT_ROWS", 100_000),
  watchers: positive("BENCH_WATCHERS", 1000),
  watchConnections: positive("BENCH_WATCH_CONNECTIONS", 10),
  watchProcesses: positive("BENCH_WATCH_PROCESSES", 2),
  watchSeconds: positive("BENCH_WATCH_SECONDS", 20),
  writeIntervalMs: positive("BENCH_WRITE_INTERVAL_MS", 10),
  listRequests: positive("BENCH_LIST_REQUESTS", 200),
  listMaxSeconds: positive("BENCH_LIST_MAX_SECONDS", 30),
  sections: (process.env.BENCH_SECTIONS?.split(",")
    .map((s) => s.trim())
    .filter(Boolean) ?? [...SECTIONS]) as Section[],
};

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** VmRSS of a process now, in bytes. */
function rssNow(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) * 1024;
}

const running = new Set<ServerProcess>();
const cleanups: (() => Promise<void>)[] = [() => Promise.all([...running].map((s) => s.stop())).then(() => {})];
async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
}

/** Runs `body` against a fresh service process; returns its result and the process's numbers. */
async function withService<T>(
  env: ServerEnv,
  body: (server: ServerProcess) => Promise<T>,
): Promise<T & { server: { idleRss: number; peakRss: number } }> {
  const server = await startServer("service", env);
  running.add(server);
  try {
    await sleep(300);
    const idleRss = rssNow(server.pid);
    const result = await body(server);
    return { ...result, server: { idleRss, peakRss: server.peakRss() } };
  } catch (err) {
    const output = server.output().trim();
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}${output ? `\nserver output (tail):\n${output}` : ""}`,
    );
  } finally {
    await server.stop();
    running.delete(server);
  }
}

async function explain(db: pg.Client, sql: string, params: unknown[]): Promise<string> {
  const { rows } = await db.query<{ "QUERY PLAN": string }>(`explain (analyze, buffers) ${sql}`, params);
  return rows.map((r) => r["QUERY PLAN"]).join("\n");
}

// ---------------------------------------------------------------------------------------------------------
// StreamUsers

async function benchStream(env: ServerEnv, token: string, db: pg.Client) {
  const { rows } = await db.query<{ n: string }>("select count(*) as n from users where delete_time is null");
  const expected = Number(rows[0].n);

  const cursorRead = async () => {
    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    try {
      const started = performance.now();
      await client.query("begin isolation level repeatable read read only");
      await client.query(
        `declare users_cursor no scroll cursor for select ${userColumns} from users where delete_time is null order by id`,
      );
      let n = 0;
      for (;;) {
        const batch = await client.query("fetch 500 from users_cursor");
        n += batch.rows.length;
        if (batch.rows.length < 500) break;
      }
      await client.query("commit");
      const seconds = (performance.now() - started) / 1000;
      if (n !== expected) throw new Error(`cursor read ${n} users, expected ${expected}`);
      return { users: n, seconds, rate: n / seconds };
    } finally {
      await client.end();
    }
  };

  log(`StreamUsers: pg cursor (1/2) over ${fmt(expected)} live users`);
  const cursor1 = await cursorRead();
  log(`  cursor: ${fmt(cursor1.rate)} users/s`);
  const service = await withService(env, async (server) => {
    log("StreamUsers: the service over gRPC");
    const cpu0 = server.cpuSeconds();
    const started = performance.now();
    const got = await streamAllUsers(server.origin, token);
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = server.cpuSeconds() - cpu0;
    if (got.users !== expected) throw new Error(`StreamUsers sent ${got.users} users, expected ${expected}`);
    return { ...got, seconds, rate: got.users / seconds, cpuPercent: (cpuSeconds / seconds) * 100 };
  });
  log(`  service: ${fmt(service.rate)} users/s, peak RSS ${mb(service.server.peakRss)} MB`);
  log("StreamUsers: pg cursor (2/2)");
  const cursor2 = await cursorRead();
  log(`  cursor: ${fmt(cursor2.rate)} users/s`);

  // The statement the service repeats for every page (src/users/pg/user-reads.ts `list`), after some position.
  const { rows: mid } = await db.query<{ id: string }>(
    "select id::text from users where delete_time is null order by id offset $1 limit 1",
    [Math.floor(expected / 2)],
  );
  const page = toSql(
    (p) => `select ${userColumns}, ${sortKeySelect(ID_ORDER)} from users
      where delete_time is null and ${filterSql(null, p)} and ${keysetSql(ID_ORDER, { keys: [], id: mid[0].id }, p)}
      order by ${orderBySql(ID_ORDER)} limit ${p.add(500)}`,
  );
  const plan = await explain(db, page.sql, page.params);
  return { expected, cursor1, cursor2, service, plan };
}

// ---------------------------------------------------------------------------------------------------------
// ListUsers

interface ListScenario {
  name: string;
  /** Filters to rotate through when paging starts over (one value per restart). */
  filters: string[];
  orderBy: string;
}

const listScenarios: ListScenario[] = [
  {
    name: "team + active, by email",
    filters: Array.from({ length: 10 }, (_, i) => `labels.team = "team-${i * 7}" AND state = USER_STATE_ACTIVE`),
    orderBy: "email",
  },
  {
    name: "team + active, newest first",
    filters: Array.from({ length: 10 }, (_, i) => `labels.team = "team-${i * 7}" AND state = USER_STATE_ACTIVE`),
    orderBy: "create_time desc",
  },
  { name: "everyone, newest first", filters: [""], orderBy: "create_time desc" },
  { name: "admins, by display name", filters: ["role = ROLE_ADMIN"], orderBy: "display_name" },
  {
    name: "enterprise created in 2025, recently updated first",
    filters: ['labels.plan = "enterprise" AND create_time >= "2025-01-01T00:00:00Z"'],
    orderBy: "update_time desc",
  },
  {
    name: "email contains, by email",
    filters: ['email:"smith"', 'email:"garcia"', 'email:"nguyen"'],
    orderBy: "email",
  },
];

const PAGE_SIZE = 100;
/** Pages followed before starting over with the next filter value. */
const PAGES_DEEP = 10;

async function benchList(env: ServerEnv, token: string, db: pg.Client) {
  const results = await withService(env, async (server) => {
    const sessionManager = new Http2SessionManager(server.origin);
    const client = createClient(
      UserService,
      createGrpcTransport({
        baseUrl: server.origin,
        sessionManager,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ],
      }),
    );
    const out = [];
    try {
      for (const s of listScenarios) {
        const latencies: number[] = [];
        /** Latencies by page: the first of each walk (page 1), the next (page 2), and every page after the first. */
        const byPage = { first: [] as number[], second: [] as number[], later: [] as number[] };
        let rows = 0;
        let totalSize = 0;
        let restarts = 0;
        let token = "";
        let depth = 0;
        const started = performance.now();
        const warmup = 5;
        for (let i = 0; latencies.length < config.listRequests; i++) {
          if (latencies.length > 0 && performance.now() - started > config.listMaxSeconds * 1000) break;
          if (token === "" || depth >= PAGES_DEEP) {
            token = "";
            depth = 0;
            restarts++;
          }
          const filter = s.filters[restarts % s.filters.length];
          const t0 = performance.now();
          const res = await client.listUsers({ filter, orderBy: s.orderBy, pageSize: PAGE_SIZE, pageToken: token });
          const ms = performance.now() - t0;
          if (i >= warmup) {
            latencies.push(ms);
            (depth === 0 ? byPage.first : byPage.later).push(ms);
            if (depth === 1) byPage.second.push(ms);
            rows += res.users.length;
          }
          totalSize = Math.max(totalSize, res.totalSize);
          token = res.nextPageToken;
          depth++;
        }
        for (const l of [latencies, byPage.first, byPage.second, byPage.later]) l.sort((a, b) => a - b);
        const r = {
          scenario: s,
          requests: latencies.length,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          firstP50: percentile(byPage.first, 50),
          secondP50: percentile(byPage.second, 50),
          secondRequests: byPage.second.length,
          laterP50: percentile(byPage.later, 50),
          laterP99: percentile(byPage.later, 99),
          rowsPerPage: rows / latencies.length,
          totalSize,
        };
        log(
          `ListUsers ${s.name}: ${r.requests} requests, p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms; ` +
            `page 1 p50 ${fmt(r.firstP50, 1)} ms, page 2 p50 ${fmt(r.secondP50, 1)} ms; ~${fmt(totalSize)} matching`,
        );
        out.push(r);
      }
    } finally {
      sessionManager.abort();
    }
    return { scenarios: out };
  });

  // The service's two statements (src/users/pg/user-reads.ts: the page, and total_size on the first page only),
  // as EXPLAIN ANALYZE, for the first page and for the second (which adds the keyset condition).
  const plans = [];
  for (const s of listScenarios) {
    const filter = parseFilter(s.filters[0]);
    const orderBy = parseOrderBy(s.orderBy);
    const pageSql = (cursor: Parameters<typeof keysetSql>[1]) =>
      toSql(
        (p) => `select ${userColumns}, ${sortKeySelect(orderBy)} from users
          where delete_time is null and ${filterSql(filter, p)} and ${keysetSql(orderBy, cursor, p)}
          order by ${orderBySql(orderBy)} limit ${p.add(PAGE_SIZE + 1)}`,
      );
    const first = pageSql(null);
    const firstRows = await db.query<Record<string, unknown>>(first.sql, first.params);
    const second =
      firstRows.rows.length > PAGE_SIZE ? pageSql(cursorFromRow(orderBy, firstRows.rows[PAGE_SIZE - 1])) : undefined;
    const count = toSql((p) => `select count(*) as n from users where delete_time is null and ${filterSql(filter, p)}`);
    plans.push({
      scenario: s,
      first: await explain(db, first.sql, first.params),
      second: second ? await explain(db, second.sql, second.params) : undefined,
      count: await explain(db, count.sql, count.params),
      sql: second ?? first,
    });
  }
  return { ...results, plans };
}

// ---------------------------------------------------------------------------------------------------------
// ImportUsers

async function benchImport(env: ServerEnv, token: string, db: pg.Client) {
  const n = config.importRows;
  const run = randomBytes(3).toString("hex");
  // One real argon2id hash for every row (hashing 100,000 distinct ones would take minutes; the server
  // stores pre-hashed passwords as given, so their values do not change its work).
  const passwordHash = await argon2Hash("correct horse battery staple");
  const row = (i: number, prefix: string) => ({
    email: `${prefix}-${run}-${String(i).padStart(7, "0")}@import.example.org`,
    displayName: `Imported User ${i}`,
    labels: { team: `team-${i % 100}`, plan: i % 4 === 0 ? "pro" : "free", source: "legacy-crm" },
  });
  const requests = Array.from({ length: n }, (_, i) =>
    Buffer.from(
      toBinary(
        ImportUsersRequestSchema,
        create(ImportUsersRequestSchema, {
          user: row(i, "imp"),
          credential: { case: "passwordHash", value: passwordHash },
        }),
      ),
    ),
  );
  const now = new Date().toISOString();
  const copyData = Buffer.from(
    Array.from({ length: n }, (_, i) => {
      const r = row(i, "cpy");
      return `${[
        randomUUID(),
        r.email,
        r.displayName,
        "user",
        "active",
        JSON.stringify(r.labels),
        passwordHash,
        "1",
        now,
        now,
      ]
        .map(copyText)
        .join("\t")}\n`;
    }).join(""),
  );

  const service = await withService(env, async (server) => {
    log(`ImportUsers: ${fmt(n)} rows over gRPC`);
    const cpu0 = server.cpuSeconds();
    const started = performance.now();
    const res = await importUsers(server.origin, token, requests);
    const seconds = (performance.now() - started) / 1000;
    const cpuSeconds = server.cpuSeconds() - cpu0;
    if (res.createdCount !== n || res.skippedCount !== 0 || res.failures.length !== 0) {
      throw new Error(
        `ImportUsers: created ${res.createdCount}, skipped ${res.skippedCount}, ${res.failures.length} failures ` +
          `(first: ${res.failures[0]?.reason}), expected ${n} created`,
      );
    }
    return { rows: n, seconds, rate: n / seconds, cpuPercent: (cpuSeconds / seconds) * 100 };
  });
  log(`  service: ${fmt(service.rate)} rows/s, peak RSS ${mb(service.server.peakRss)} MB`);

  log(`ImportUsers: COPY of the same ${fmt(n)} rows`);
  const copyClient = new pg.Client({ connectionString: env.DATABASE_URL });
  await copyClient.connect();
  let copy: { rows: number; seconds: number; rate: number };
  try {
    const started = performance.now();
    const copied = await copyFrom(
      copyClient,
      `copy users (id, email, display_name, role, state, labels, password_hash, version, create_time, update_time)
        from stdin`,
      copyData,
    );
    const seconds = (performance.now() - started) / 1000;
    if (copied !== n) throw new Error(`COPY wrote ${copied} rows, expected ${n}`);
    copy = { rows: n, seconds, rate: n / seconds };
  } finally {
    await copyClient.end();
  }
  log(`  COPY: ${fmt(copy.rate)} rows/s`);
  const { rows: logged } = await db.query<{ n: string }>(
    "select count(*) as n from user_changes where type = 'created' and snapshot->>'email' like $1",
    [`imp-${run}-%`],
  );
  return { service, copy, changeRows: Number(logged[0].n), bytes: copyData.length };
}

// ---------------------------------------------------------------------------------------------------------
// WatchUsers

function mergeHistograms(parts: [number, number][][]): { p: (q: number) => number; count: number; max: number } {
  const counts = new Map<number, number>();
  for (const part of parts) for (const [b, c] of part) counts.set(b, (counts.get(b) ?? 0) + c);
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const count = buckets.reduce((a, [, c]) => a + c, 0);
  return {
    count,
    max: buckets.length ? (buckets[buckets.length - 1][0] + 1) * BUCKET_MS : Number.NaN,
    p(q) {
      const rank = Math.ceil((q / 100) * count);
      let seen = 0;
      for (const [b, c] of buckets) {
        seen += c;
        if (seen >= rank) return (b + 1) * BUCKET_MS;
      }
      return Number.NaN;
    },
  };
}

async function benchWatch(env: ServerEnv, token: string, db: pg.Client) {
  const { rows: targets } = await db.query<{ id: string; team: string }>(
    "select id::text, labels->>'team' as team from users where state = 'active' and role = 'user' limit 50",
  );
  // Every write appends to the change log under one advisory lock held until commit, so writes are
  // serialised through the commit's WAL flush: with synchronous_commit = on, this machine's disk (not the
  // service) limits UpdateUser to well under 100/s and the writes queue. The fan-out is what is measured
  // here, so by default commits do not wait for the disk (as in the test suite); BENCH_WATCH_SYNC_COMMIT=on
  // measures with the flush.
  const syncCommit = process.env.BENCH_WATCH_SYNC_COMMIT === "on" ? "on" : "off";
  const database = db.escapeIdentifier((await db.query<{ d: string }>("select current_database() as d")).rows[0].d);
  await db.query(`alter database ${database} set synchronous_commit = ${syncCommit}`);
  try {
    return { syncCommit, ...(await watchWith(env, token, targets)) };
  } finally {
    await db.query(`alter database ${database} reset synchronous_commit`);
  }
}

async function watchWith(env: ServerEnv, token: string, targets: { id: string; team: string }[]) {
  return withService({ ...env, WATCH_HEARTBEAT: "5s" } as ServerEnv, async (server) => {
    const per = Math.ceil(config.watchers / config.watchProcesses);
    const children = Array.from({ length: config.watchProcesses }, (_, i) => {
      const watchers = Math.min(per, config.watchers - i * per);
      const child = fork(join(repoRoot, "bench/streams/watchers.ts"), [], {
        env: {
          ...process.env,
          WATCH_BASE_URL: server.origin,
          WATCH_TOKEN: token,
          WATCH_WATCHERS: String(watchers),
          WATCH_CONNECTIONS: String(Math.max(1, Math.round(config.watchConnections / config.watchProcesses))),
        },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      const state = { progress: { type: "progress", ready: 0, measured: 0, errors: 0 } as WatchersProgress };
      const result = new Promise<WatchersResult>((resolve, reject) => {
        child.on("message", (m: WatchersProgress | WatchersResult) => {
          if (m.type === "progress") state.progress = m;
          else resolve(m);
        });
        child.once("exit", (code) =>
          setTimeout(() => reject(new Error(`watcher process exited (${code}) before its result`)), 2000),
        );
      });
      result.catch(() => {});
      return { child, watchers, state, result };
    });
    cleanups.push(async () => {
      for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGKILL");
    });

    const sessionManager = new Http2SessionManager(server.origin);
    const writer = createClient(
      UserService,
      createGrpcTransport({
        baseUrl: server.origin,
        sessionManager,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ],
      }),
    );
    let k = 0;
    const write = async (phase: string) => {
      const t = targets[k++ % targets.length];
      const sent = performance.timeOrigin + performance.now();
      await writer.updateUser({
        user: { id: t.id, labels: { team: t.team, bench_phase: phase, bench_sent: sent.toFixed(3) } },
        updateMask: { paths: ["labels"] },
      });
      return performance.timeOrigin + performance.now() - sent;
    };

    // Warm-up: a write every 100 ms until every watcher has received one.
    log(`WatchUsers: opening ${config.watchers} watchers in ${config.watchProcesses} processes`);
    const opening = performance.now();
    for (;;) {
      await write("warmup");
      const ready = children.reduce((a, c) => a + c.state.progress.ready, 0);
      const errors = children.reduce((a, c) => a + c.state.progress.errors, 0);
      if (errors > 0) throw new Error(`${errors} watchers failed while opening`);
      if (ready >= config.watchers) break;
      if (performance.now() - opening > 120_000)
        throw new Error(`only ${ready} of ${config.watchers} watchers ready after 120 s`);
      await sleep(100);
    }
    const openSeconds = (performance.now() - opening) / 1000;
    log(
      `  all watchers receiving after ${fmt(openSeconds, 1)} s; writing every ${config.writeIntervalMs} ms for ${config.watchSeconds} s`,
    );
    await sleep(500);
    const rssBefore = rssNow(server.pid);
    const childCpu0 = children.map((c) => c.child.pid as number).map(cpuOf);

    // Measured period: a write every interval, on schedule (not waiting for the previous one).
    const cpu0 = server.cpuSeconds();
    const started = performance.now();
    const writes: Promise<number>[] = [];
    const writeErrors: string[] = [];
    let peakRssDuring = 0;
    const rssTimer = setInterval(() => (peakRssDuring = Math.max(peakRssDuring, rssNow(server.pid))), 200);
    cleanups.push(async () => clearInterval(rssTimer));
    for (let i = 0; ; i++) {
      const due = started + i * config.writeIntervalMs;
      if (due - started >= config.watchSeconds * 1000) break;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const w = write("measure").catch((err: unknown) => {
        writeErrors.push(err instanceof Error ? err.message : String(err));
        return Number.NaN;
      });
      writes.push(w);
    }
    const writeMs = (await Promise.all(writes)).filter((ms) => !Number.isNaN(ms)).sort((a, b) => a - b);
    clearInterval(rssTimer);
    const writeSeconds = (performance.now() - started) / 1000;
    const expected = writeMs.length * config.watchers;
    const draining = performance.now();
    while (
      children.reduce((a, c) => a + c.state.progress.measured, 0) < expected &&
      performance.now() - draining < 15_000
    ) {
      await sleep(100);
    }
    const cpuSeconds = server.cpuSeconds() - cpu0;
    const elapsed = (performance.now() - started) / 1000;
    const childCpuSeconds = children.map((c, i) => cpuOf(c.child.pid as number) - childCpu0[i]);
    for (const c of children) c.child.send({ type: "finish" });
    const results = await Promise.all(children.map((c) => c.result));
    sessionManager.abort();

    const fromSent = mergeHistograms(results.map((r) => r.fromSent));
    const fromEventTime = mergeHistograms(results.map((r) => r.fromEventTime));
    const perWatcher = results.flatMap((r) => r.perWatcher);
    const summary = {
      watchers: config.watchers,
      processes: config.watchProcesses,
      connections: config.watchConnections,
      writes: writes.length,
      writeRate: writes.length / writeSeconds,
      writeErrors: writeErrors.length,
      firstWriteError: writeErrors[0],
      writeP50: percentile(writeMs, 50),
      writeP99: percentile(writeMs, 99),
      expected,
      delivered: fromSent.count,
      minPerWatcher: Math.min(...perWatcher),
      maxPerWatcher: Math.max(...perWatcher),
      sent: { p50: fromSent.p(50), p99: fromSent.p(99), max: fromSent.max },
      event: { p50: fromEventTime.p(50), p99: fromEventTime.p(99), max: fromEventTime.max },
      openSeconds,
      serverCpuPercent: (cpuSeconds / elapsed) * 100,
      clientCpuPercent: (childCpuSeconds.reduce((a, b) => a + b, 0) / elapsed) * 100,
      rssBefore,
      peakRssDuring,
      errors: results.flatMap((r) => r.errors),
    };
    log(
      `  delivered ${fmt(summary.delivered)} of ${fmt(expected)}; write->delivery p50 ${fmt(summary.sent.p50, 1)} ms, ` +
        `p99 ${fmt(summary.sent.p99, 1)} ms; server CPU ${fmt(summary.serverCpuPercent)} %`,
    );
    return summary;
  });
}

/** CPU seconds (user + system) of a process so far. */
function cpuOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

type StreamResult = Awaited<ReturnType<typeof benchStream>>;
type ListResult = Awaited<ReturnType<typeof benchList>>;
type ImportResult = Awaited<ReturnType<typeof benchImport>>;
type WatchResult = Awaited<ReturnType<typeof benchWatch>>;

interface Results {
  stream?: StreamResult;
  list?: ListResult;
  import?: ImportResult;
  watch?: WatchResult;
}

const mark = (ok: boolean) => (ok ? "met" : "**not met**");

/** Plan lines worth a reader's attention. */
function planFlags(plan: string): string[] {
  const flags: string[] = [];
  if (/Seq Scan on users/.test(plan)) flags.push("sequential scan of users");
  if (/(^|\s)Sort\s+\(/m.test(plan) && !/Incremental Sort/.test(plan)) flags.push("full sort");
  if (/Incremental Sort/.test(plan)) flags.push("incremental sort");
  if (/Bitmap Heap Scan on users/.test(plan)) flags.push("bitmap heap scan");
  const exec = /Execution Time: ([\d.]+) ms/.exec(plan)?.[1];
  if (exec) flags.push(`${fmt(Number(exec), 1)} ms`);
  return flags;
}

function render(info: Record<string, string>, r: Results): string {
  const out: string[] = ["# Lists, streams and the change feed: benchmark", ""];
  out.push(
    `${info.date}, commit ${info.commit}, Node ${info.node}, ${info.cpus} CPUs (load average ${info.load} before the run), ` +
      `PostgreSQL ${info.postgres} (${info.database}). ${info.users} users seeded in ${info.seedSeconds} s.`,
    `Every section runs against a fresh service process (the server bundle, LOG_LEVEL=warn, DB_POOL_MAX=${process.env.DB_POOL_MAX ?? "10"});`,
    "peak RSS is that process's VmHWM (start-up included), MB = 2^20 bytes. Server CPU is % of one core.",
    "",
    "## Summary",
    "",
    "| benchmark | result | comparison | server peak RSS MB |",
    "|---|--:|---|--:|",
  );
  if (r.stream) {
    const s = r.stream;
    const best = Math.max(s.cursor1.rate, s.cursor2.rate);
    out.push(
      `| StreamUsers, ${fmt(s.expected)} users | ${fmt(s.service.rate)} users/s | pg cursor ${fmt(best)} users/s: ${fmt(s.service.rate / best, 2)}x (target >= 0.5x: ${mark(s.service.rate >= 0.5 * best)}) | ${mb(s.service.server.peakRss)} |`,
    );
  }
  if (r.import) {
    const s = r.import;
    out.push(
      `| ImportUsers, ${fmt(s.service.rows)} rows, pre-hashed | ${fmt(s.service.rate)} rows/s | COPY ${fmt(s.copy.rate)} rows/s: ${fmt(s.service.rate / s.copy.rate, 2)}x (target >= 0.5x: ${mark(s.service.rate >= 0.5 * s.copy.rate)}) | ${mb(s.service.server.peakRss)} |`,
    );
  }
  if (r.watch) {
    const w = r.watch;
    out.push(
      `| WatchUsers, ${fmt(w.watchers)} watchers, a write every ${config.writeIntervalMs} ms | commit->delivery p50 ${fmt(w.event.p50, 1)} ms, p99 ${fmt(w.event.p99, 1)} ms | write sent->delivery p50 ${fmt(w.sent.p50, 1)} ms, p99 ${fmt(w.sent.p99, 1)} ms; ${fmt(w.delivered)} of ${fmt(w.expected)} events delivered | ${mb(w.server.peakRss)} |`,
    );
  }
  if (r.list) {
    for (const s of r.list.scenarios) {
      out.push(
        `| ListUsers ${s.scenario.name} (page of ${PAGE_SIZE}) | p50 ${fmt(s.p50, 1)} ms, p99 ${fmt(s.p99, 1)} ms; page 2 p50 ${fmt(s.secondP50, 1)} ms | ${s.requests} sequential requests, ~${fmt(s.totalSize)} matching; page 2 p50 <= 20 ms: ${mark(s.secondP50 <= 20)} | ${mb(r.list.server.peakRss)} |`,
      );
    }
  }
  out.push("");

  if (r.stream) {
    const s = r.stream;
    out.push(
      "## StreamUsers",
      "",
      "Every live user (no filter), the service over gRPC to a @grpc/grpc-js client that only counts the users in each",
      "message, against a plain `pg` cursor (`DECLARE ... CURSOR` in a REPEATABLE READ transaction, `FETCH 500`, the",
      "service's columns, `where delete_time is null order by id`), run once before and once after the service.",
      "",
      "| reader | users | seconds | users/s | server CPU % | server RSS idle / peak MB |",
      "|---|--:|--:|--:|--:|--:|",
      `| pg cursor (before) | ${fmt(s.cursor1.users)} | ${fmt(s.cursor1.seconds, 2)} | ${fmt(s.cursor1.rate)} | | |`,
      `| service gRPC StreamUsers | ${fmt(s.service.users)} (${fmt(s.service.messages)} messages) | ${fmt(s.service.seconds, 2)} | ${fmt(s.service.rate)} | ${fmt(s.service.cpuPercent)} | ${mb(s.service.server.idleRss)} / ${mb(s.service.server.peakRss)} |`,
      `| pg cursor (after) | ${fmt(s.cursor2.users)} | ${fmt(s.cursor2.seconds, 2)} | ${fmt(s.cursor2.rate)} | | |`,
      "",
      "<details><summary>EXPLAIN ANALYZE of one StreamUsers page (keyset after the middle id)</summary>",
      "",
      "```",
      s.plan,
      "```",
      "",
      "</details>",
      "",
    );
  }
  if (r.list) {
    out.push(
      "## ListUsers",
      "",
      `Sequential requests over gRPC (connect-node), pages of ${PAGE_SIZE}: each scenario follows next_page_token up to`,
      `${PAGES_DEEP} pages deep, then starts over (with the next filter value when there are several). Each request is`,
      "The first page is two statements run in parallel by the service: the page (keyset) and `count(*)` for total_size;",
      "the pages after it carry page 1's total_size in their token and run only the page statement (docs/adr/0018).",
      "Page 1 and page 2 are measured apart (page 2 is the first page that follows a token; pages 2+ are all but the",
      `first of each walk). The first 5 requests of a scenario are not measured; a scenario stops after ${config.listRequests}`,
      `requests or ${config.listMaxSeconds} s.`,
      "",
      "| scenario | filter (first value) | order_by | requests | p50 ms | p99 ms | page 1 p50 ms | page 2 p50 ms (n) | pages 2+ p50 / p99 ms | rows/page | total_size | plan: page 2 / count |",
      "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
      ...r.list.scenarios.map((s) => {
        const plan = r.list?.plans.find((p) => p.scenario === s.scenario);
        const flags = plan
          ? `${planFlags(plan.second ?? plan.first).join(", ")} / ${planFlags(plan.count).join(", ")}`
          : "";
        return `| ${s.scenario.name} | \`${s.scenario.filters[0] || "(none)"}\` | \`${s.scenario.orderBy}\` | ${s.requests} | ${fmt(s.p50, 1)} | ${fmt(s.p99, 1)} | ${fmt(s.firstP50, 1)} | ${fmt(s.secondP50, 1)} (${s.secondRequests}) | ${fmt(s.laterP50, 1)} / ${fmt(s.laterP99, 1)} | ${fmt(s.rowsPerPage)} | ${fmt(s.totalSize)} | ${flags} |`;
      }),
      "",
      `Server RSS idle / peak: ${mb(r.list.server.idleRss)} / ${mb(r.list.server.peakRss)} MB.`,
      "",
    );
    for (const p of r.list.plans) {
      out.push(
        `<details><summary>EXPLAIN ANALYZE: ${p.scenario.name}</summary>`,
        "",
        "Page 2 (the keyset condition after page 1's last row):",
        "",
        "```sql",
        p.sql.sql.replace(/\s+/g, " ").trim(),
        `-- params: ${JSON.stringify(p.sql.params)}`,
        "```",
        "",
        "```",
        p.second ?? p.first,
        "```",
        "",
        "total_size:",
        "",
        "```",
        p.count,
        "```",
        "",
        "</details>",
        "",
      );
    }
  }
  if (r.import) {
    const s = r.import;
    out.push(
      "## ImportUsers",
      "",
      `${fmt(s.service.rows)} rows with an argon2id PHC \`password_hash\` (the same hash for every row), three labels each,`,
      "encoded before the clock starts and streamed over gRPC (@grpc/grpc-js, with backpressure); the service validates",
      "each row and writes batches of 1,000 in their own transactions (two at a time), each with the change-log rows of the users it",
      `created (${fmt(s.changeRows)} change-log rows found for this import). The comparison is \`COPY users (...) FROM STDIN\``,
      "(text format, sent with the `pg` client's copy-in protocol, one statement) of the same rows with other ids and",
      `emails of the same length, into the same table with all its indexes, ${mb(s.bytes)} MB of COPY data; COPY writes no`,
      "change log. Both load the same PHC string: neither side hashes a password while the clock runs.",
      "",
      "| writer | rows | seconds | rows/s | server CPU % | server RSS idle / peak MB |",
      "|---|--:|--:|--:|--:|--:|",
      `| service gRPC ImportUsers | ${fmt(s.service.rows)} | ${fmt(s.service.seconds, 2)} | ${fmt(s.service.rate)} | ${fmt(s.service.cpuPercent)} | ${mb(s.service.server.idleRss)} / ${mb(s.service.server.peakRss)} |`,
      `| PostgreSQL COPY FROM STDIN | ${fmt(s.copy.rows)} | ${fmt(s.copy.seconds, 2)} | ${fmt(s.copy.rate)} | | |`,
      "",
    );
  }
  if (r.watch) {
    const w = r.watch;
    out.push(
      "## WatchUsers fan-out",
      "",
      `${fmt(w.watchers)} WatchUsers streams (no filter, no snapshot) on one service process, opened by ${w.processes} child`,
      `processes over ${w.connections} HTTP/2 connections in all (connect-node gRPC transports, ${fmt(w.watchers / w.connections)} streams`,
      `each). The bench then calls UpdateUser through the service every ${config.writeIntervalMs} ms (on schedule, not waiting for the`,
      `previous call) for ${config.watchSeconds} s, rotating over 50 users, setting a label to its clock. Latency is measured`,
      "where each watcher decodes the event: from `event_time` (change_time, stamped in the writing transaction just before",
      "its commit: commit -> delivery) and from the writer's send time (UpdateUser round trip included).",
      `The database runs with synchronous_commit = ${w.syncCommit} for this section${w.syncCommit === "off" ? " (BENCH_WATCH_SYNC_COMMIT=on to flush every commit: writes are serialised by the change-log append lock, so the disk's flush time then bounds the write rate)" : ""}.`,
      "",
      "| | value |",
      "|---|--:|",
      `| writes (UpdateUser) | ${fmt(w.writes)} (${fmt(w.writeRate)}/s), UpdateUser p50 ${fmt(w.writeP50, 1)} ms, p99 ${fmt(w.writeP99, 1)} ms |`,
      `| failed writes | ${w.writeErrors === 0 ? "none" : `**${fmt(w.writeErrors)}** (first: ${w.firstWriteError})`} |`,
      `| events delivered / expected | ${fmt(w.delivered)} / ${fmt(w.expected)} (per watcher ${fmt(w.minPerWatcher)}..${fmt(w.maxPerWatcher)}) |`,
      `| commit -> delivery p50 / p99 / max ms | ${fmt(w.event.p50, 1)} / ${fmt(w.event.p99, 1)} / ${fmt(w.event.max, 1)} |`,
      `| write sent -> delivery p50 / p99 / max ms | ${fmt(w.sent.p50, 1)} / ${fmt(w.sent.p99, 1)} / ${fmt(w.sent.max, 1)} |`,
      `| time until all watchers received an event | ${fmt(w.openSeconds, 1)} s |`,
      `| server CPU during writes | ${fmt(w.serverCpuPercent)} % |`,
      `| watcher processes' CPU during writes | ${fmt(w.clientCpuPercent)} % |`,
      `| server RSS idle / with watchers / peak during writes / VmHWM MB | ${mb(w.server.idleRss)} / ${mb(w.rssBefore)} / ${mb(w.peakRssDuring)} / ${mb(w.server.peakRss)} |`,
      `| watcher errors | ${w.errors.length === 0 ? "none" : w.errors.join("; ")} |`,
      "",
    );
  }
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const load = loadavg()[0];
  const unknown = config.sections.filter((s) => !SECTIONS.includes(s));
  if (unknown.length) throw new Error(`BENCH_SECTIONS: unknown ${unknown.join(", ")}; known: ${SECTIONS.join(", ")}`);

  let databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) {
    const work = mkdtempSync(join(tmpdir(), "user-service-bench-streams-"));
    cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
    const embedded = await startEmbeddedPostgres(work, log);
    cleanups.push(() => embedded.stop());
    databaseUrl = embedded.url;
  }
  const seeding = performance.now();
  await seedUsers(databaseUrl, config.users, log);
  const seedSeconds = (performance.now() - seeding) / 1000;

  const env: ServerEnv = {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(48).toString("base64url"),
    JWT_ISSUER: process.env.JWT_ISSUER || "user-service",
    JWT_AUDIENCE: process.env.JWT_AUDIENCE || "user-service",
    DB_POOL_MAX: process.env.DB_POOL_MAX ?? "10",
  };
  const token = benchAdminToken(env, 12 * 3600);

  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  cleanups.push(() => db.end());
  const version = (await db.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;

  const results: Results = {};
  if (config.sections.includes("stream")) results.stream = await benchStream(env, token, db);
  if (config.sections.includes("list")) results.list = await benchList(env, token, db);
  if (config.sections.includes("import")) results.import = await benchImport(env, token, db);
  if (config.sections.includes("watch")) results.watch = await benchWatch(env, token, db);

  const report = render(
    {
      date: new Date().toISOString().slice(0, 16).replace("T", " "),
      commit: gitCommit(),
      node: process.version,
      cpus: String(availableParallelism()),
      load: fmt(load, 2),
      postgres: version,
      database: process.env.BENCH_DATABASE_URL ? "BENCH_DATABASE_URL" : "embedded, default settings",
      users: fmt(config.users),
      seedSeconds: fmt(seedSeconds, 1),
    },
    results,
  );
  const dir = join(repoRoot, "bench/streams/results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "latest.md"), report);
  process.stdout.write(`\n${report}`);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(130)));
}
let exitCode = 0;
try {
  await main();
} catch (err) {
  log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  await cleanUp();
}
// Explicitly: embedded-postgres hooks `beforeExit` to exit with 0, which would hide a failure.
process.exit(exitCode);
