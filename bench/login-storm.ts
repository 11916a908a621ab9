/**
 * Login storm: Login throughput and latency at the contract's argon2id parameters, and what a storm of
 * logins does to everybody else, i.e. GetUser p99 alone against GetUser p99 while logins run flat out (the
 * target: within 2x). Hashing runs on libuv's thread pool, so the event loop should keep serving other calls.
 *
 * It starts an embedded PostgreSQL under the OS temp directory (or uses BENCH_DATABASE_URL), seeds it, starts
 * the service as deployed (the server bundle, bench/servers.ts) and drives it over gRPC (connect-node, one
 * HTTP/2 connection) from this process. GetUser is sent open-loop at a fixed rate, so its latency measures
 * the service, not the load generator's patience. Each round has three phases of BENCH_DURATION seconds:
 * logins alone, GetUser alone, both together; the table gives the median of each number over the rounds
 * (a shared machine is noisy), and the ratio of each round.
 *
 * Usage: `node bench/login-storm.ts`. Environment (all optional): BENCH_DATABASE_URL, BENCH_DURATION (10),
 * BENCH_ROUNDS (3), BENCH_LOGIN_CONCURRENCY (8 logins in flight), BENCH_GETUSER_RPS (200),
 * BENCH_LOGIN_USERS (32).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { AuthService } from "../gen/auth/v1/auth_service_pb.js";
import { UserService } from "../gen/user/v1/user_service_pb.js";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.ts";
import { benchAdminToken, benchUserId, seed } from "./seed.ts";
import { type ServerEnv, startServer } from "./servers.ts";

const durationMs = Number(process.env.BENCH_DURATION ?? 10) * 1000;
const loginConcurrency = Number(process.env.BENCH_LOGIN_CONCURRENCY ?? 8);
const getUserRps = Number(process.env.BENCH_GETUSER_RPS ?? 200);
const loginUsers = Number(process.env.BENCH_LOGIN_USERS ?? 32);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seededUsers = 10_000;

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Latencies (ms) and failures of one kind of call during one phase. */
interface Series {
  latencies: number[];
  failures: number;
  ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

type Summary = ReturnType<typeof summary>;

function summary(s: Series) {
  const sorted = [...s.latencies].sort((a, b) => a - b);
  return {
    count: sorted.length,
    perSecond: (sorted.length / s.ms) * 1000,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    failures: s.failures,
  };
}

async function timed(call: () => Promise<unknown>, into: Series): Promise<void> {
  const started = performance.now();
  try {
    await call();
    into.latencies.push(performance.now() - started);
  } catch {
    into.failures++;
  }
}

/** `concurrency` callers, each starting its next call as soon as the last one ends (a storm). */
async function closedLoop(call: (i: number) => Promise<unknown>, concurrency: number, ms: number): Promise<Series> {
  const series: Series = { latencies: [], failures: 0, ms };
  const end = performance.now() + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await timed(() => call(n++), series);
    }),
  );
  return series;
}

/** Calls at a fixed rate whatever the answers take (open loop), so slow answers show up as latency. */
async function openLoop(call: (i: number) => Promise<unknown>, rps: number, ms: number): Promise<Series> {
  const series: Series = { latencies: [], failures: 0, ms };
  const inFlight: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < Math.floor((rps * ms) / 1000); i++) {
    const due = started + (i * 1000) / rps;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(timed(() => call(i), series));
  }
  await Promise.all(inFlight);
  return series;
}

const cleanups: (() => Promise<void>)[] = [];
try {
  const work = mkdtempSync(join(tmpdir(), "login-storm-"));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) {
    const embedded = await startEmbeddedPostgres(work, log);
    cleanups.unshift(() => embedded.stop());
    databaseUrl = embedded.url;
  }
  await seed(databaseUrl, seededUsers);

  const env: ServerEnv & Record<string, string> = {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(48).toString("base64url"),
    JWT_ISSUER: "user-service",
    JWT_AUDIENCE: "user-service",
    DB_POOL_MAX: "10",
    // All calls come from one address: the per-client limit would otherwise measure itself.
    RATE_LIMIT_PER_SECOND: "1000000",
    RATE_LIMIT_BURST: "1000000",
  };
  const server = await startServer("service", env);
  cleanups.unshift(() => server.stop());
  const admin = benchAdminToken(env, 3600);
  const transport = createGrpcTransport({ baseUrl: server.origin });
  const auth = createClient(AuthService, transport);
  const users = createClient(UserService, transport);
  const asAdmin = { headers: { authorization: `Bearer ${admin}` } };

  // Accounts with real passwords, created through the API so their hashes are the service's own.
  const accounts = await Promise.all(
    Array.from({ length: loginUsers }, async (_, i) => {
      const email = `storm-${i}-${randomUUID().slice(0, 6)}@bench.example`;
      const password = `storm password ${i}`;
      await users.createUser({ user: { email, displayName: `Storm ${i}` }, password }, asAdmin);
      return { email, password };
    }),
  );
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ p: string }>(
    "select substring(password_hash from '^\\$argon2id\\$v=19\\$[^$]+') as p from users where email = $1",
    [accounts[0].email],
  );
  await client.end();

  const login = (i: number) => auth.login(accounts[i % accounts.length]);
  const getUser = (i: number) => users.getUser({ userId: benchUserId((i * 7919) % seededUsers) }, asAdmin);
  log("warming up");
  await closedLoop(login, loginConcurrency, 2000);
  await openLoop(getUser, getUserRps, 2000);

  const phases: { loginsAlone: Summary; getUserAlone: Summary; loginsStorm: Summary; getUserStorm: Summary }[] = [];
  for (let r = 1; r <= rounds; r++) {
    log(`round ${r}/${rounds}: logins alone (${loginConcurrency} in flight), GetUser alone (${getUserRps}/s), both`);
    const loginsAlone = summary(await closedLoop(login, loginConcurrency, durationMs));
    const getUserAlone = summary(await openLoop(getUser, getUserRps, durationMs));
    const [loginsStorm, getUserStorm] = await Promise.all([
      closedLoop(login, loginConcurrency, durationMs).then(summary),
      openLoop(getUser, getUserRps, durationMs).then(summary),
    ]);
    phases.push({ loginsAlone, getUserAlone, loginsStorm, getUserStorm });
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const med = (pick: (p: (typeof phases)[number]) => Summary): Summary => {
    const all = phases.map(pick);
    const m = (key: keyof Summary) => median(all.map((s) => s[key]));
    return {
      count: m("count"),
      perSecond: m("perSecond"),
      p50: m("p50"),
      p99: m("p99"),
      failures: all.reduce((n, s) => n + s.failures, 0),
    };
  };
  const loginsAlone = med((p) => p.loginsAlone);
  const getUserAlone = med((p) => p.getUserAlone);
  const loginsStorm = med((p) => p.loginsStorm);
  const getUserStorm = med((p) => p.getUserStorm);
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-");
  const row = (name: string, s: Summary) =>
    `| ${name} | ${s.count} | ${f(s.perSecond)} | ${f(s.p50)} | ${f(s.p99)} | ${s.failures} |`;
  const ratios = phases.map((p) => p.getUserStorm.p99 / p.getUserAlone.p99);
  const ratio = getUserStorm.p99 / getUserAlone.p99;
  process.stdout.write(
    [
      `Login storm: ${cpus()[0]?.model ?? "cpu"} x${availableParallelism()}, argon2 ${rows[0]?.p ?? "?"}, ` +
        `${loginConcurrency} logins in flight, GetUser at ${getUserRps}/s, ${durationMs / 1000} s per phase, median of ${rounds} rounds`,
      "",
      "| phase (median) | calls | per second | p50 ms | p99 ms | failures |",
      "| --- | ---: | ---: | ---: | ---: | ---: |",
      row("Login alone", loginsAlone),
      row("GetUser alone", getUserAlone),
      row("Login during storm", loginsStorm),
      row("GetUser during storm", getUserStorm),
      "",
      `GetUser p99 under the storm / alone: ${ratio.toFixed(2)}x (target <= 2x: ${ratio <= 2 ? "met" : "NOT met"}); ` +
        `per round: ${ratios.map((x) => `${x.toFixed(2)}x`).join(", ")}`,
      "",
    ].join("\n"),
  );
  const failures = loginsAlone.failures + getUserAlone.failures + loginsStorm.failures + getUserStorm.failures;
  if (failures > 0) process.exitCode = 1;
} finally {
  for (const c of cleanups) await c().catch(() => {});
}
