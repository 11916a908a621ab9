/**
 * The GetUser scenarios: the service against the hand-written baseline under h2load.
 *
 * - `getuser`: 100,000 users (BENCH_USERS), random ids, the cache holding them all (issue 3's goals).
 * - `getuser-1m`: 1,000,000 users (BENCH_USERS_1M), random ids over all of them, default configuration
 *   (issue 14's goals; the default cache holds them all since docs/adr/0017, warming takes ~16 s).
 *
 * PostgreSQL (embedded, data in a temporary directory, or BENCH_DATABASE_URL) is seeded with N users; then,
 * for several rounds, each target (a server and a protocol) gets a fresh server process, a probe request,
 * an h2load warm-up and a timed load with random user ids, while a real client checks answers. Any wrong
 * answer fails the benchmark.
 *
 * Environment (all optional): BENCH_DATABASE_URL, BENCH_USERS (100000), BENCH_USERS_1M (1000000),
 * BENCH_DURATION (10 s), BENCH_WARMUP (3 s), BENCH_ROUNDS (3), BENCH_TARGETS (comma list of target ids,
 * e.g. `baseline-grpc,service-grpc`; `service-grpc-apikey` is the service over gRPC with an API key), BENCH_CPU_PROF (a directory: the servers run with --cpu-prof and
 * write one profile per load there, named <target>-round<N>.cpuprofile; see profile-summary.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startEmbeddedPostgres } from "../../src/db/embedded-postgres.ts";
import { ensureH2load, runLoad } from "../h2load.ts";
import { probe } from "../probe.ts";
import { protocols, requestBody } from "../protocols.ts";
import { type Goals, type RunInfo, renderReport, type Sample, type Target } from "../report.ts";
import { idBound, startRotatingBody } from "../rotating-body.ts";
import { benchAdminApiKey, benchAdminToken, benchUserId, seed } from "../seed.ts";
import { gitCommit, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";
import { startVerifier } from "../verifier.ts";

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: "${raw}" is not a positive number`);
  return n;
}

const log = (line: string) => process.stderr.write(`bench:getuser: ${line}\n`);

const allTargets: Target[] = [
  { name: "baseline gRPC (grpc-js)", server: "baseline", protocol: "grpc" },
  { name: "service gRPC", server: "service", protocol: "grpc" },
  // The same calls authenticated with an API key instead of a JWT (docs/adr/0019-api-keys.md).
  { name: "service gRPC, API key", server: "service", protocol: "grpc", credential: "api-key" },
  { name: "service Connect binary HTTP/2", server: "service", protocol: "connect-h2" },
  { name: "service Connect binary HTTP/1.1", server: "service", protocol: "connect-h1" },
  { name: "service gRPC-web HTTP/2", server: "service", protocol: "grpc-web" },
];
const targetId = (t: Target) => `${t.server}-${t.protocol}${t.credential === "api-key" ? "-apikey" : ""}`;

function selectedTargets(): Target[] {
  const wanted = process.env.BENCH_TARGETS?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (!wanted?.length) return allTargets;
  const unknown = wanted.filter((w) => !allTargets.some((t) => targetId(t) === w));
  if (unknown.length)
    throw new Error(`BENCH_TARGETS: unknown ${unknown.join(", ")}; known: ${allTargets.map(targetId).join(", ")}`);
  return allTargets.filter((t) => wanted.includes(targetId(t)));
}

const running = new Set<ServerProcess>();
const cleanups: (() => Promise<void>)[] = [() => Promise.all([...running].map((s) => s.stop())).then(() => {})];
async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
}

/** One GetUser scenario: `users` seeded, `goals` checked. Returns the markdown report. */
async function runGetUser(title: string, users: number, goals: Goals): Promise<string> {
  try {
    return await measureGetUser(title, users, goals);
  } finally {
    await cleanUp();
  }
}

async function measureGetUser(title: string, users: number, goals: Goals): Promise<string> {
  const loadAverage = loadavg()[0];
  const durationSeconds = positive("BENCH_DURATION", 10);
  const warmupSeconds = positive("BENCH_WARMUP", 3);
  const rounds = positive("BENCH_ROUNDS", 3);
  const targets = selectedTargets();
  const profileDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
  const h2loadVersion = await ensureH2load(log);

  const work = mkdtempSync(join(tmpdir(), "user-service-bench-"));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  if (!databaseUrl) {
    const pg = await startEmbeddedPostgres(work, log);
    cleanups.push(() => pg.stop());
    databaseUrl = pg.url;
  }
  const seeding = performance.now();
  await seed(databaseUrl, users);
  log(`seeded ${users} users in ${Math.round(performance.now() - seeding)} ms`);

  const env: ServerEnv = {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(48).toString("base64url"),
    JWT_ISSUER: process.env.JWT_ISSUER || "user-service",
    JWT_AUDIENCE: process.env.JWT_AUDIENCE || "user-service",
    DB_POOL_MAX: "10",
  };
  const _now = Math.floor(Date.now() / 1000);
  const jwt = benchAdminToken(env, 12 * 3600);
  const apiKey = await benchAdminApiKey(databaseUrl);
  const bound = idBound(users);
  const load = { connections: 50, streams: 10, warmupSeconds, durationSeconds };

  async function measure(target: Target, round: number): Promise<Sample> {
    const nodeArgs = profileDir
      ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${targetId(target)}-round${round}.cpuprofile`]
      : [];
    const server: ServerProcess = await startServer(target.server, env, nodeArgs);
    running.add(server);
    try {
      const protocol = protocols[target.protocol];
      const token = target.credential === "api-key" ? apiKey : jwt;
      const headers = { ...protocol.headers, authorization: `Bearer ${token}` };
      const firstId = benchUserId(Math.floor(Math.random() * bound));
      const { body, idOffset } = requestBody(protocol, firstId);
      await probe(server.origin, protocol, headers, body, firstId);
      const bodyFile = join(work, `${target.protocol}.body`);
      const rotating = startRotatingBody(bodyFile, body, idOffset + firstId.length, bound);
      const verifier = startVerifier(target.protocol, server.origin, token, bound);
      const cpu = { start: 0, end: 0 };
      const result = await runLoad({
        ...load,
        url: `${server.origin}/user.v1.UserService/GetUser`,
        http1: protocol.httpVersion === "1.1",
        headers,
        bodyFile,
        logFile: join(work, "h2load.log"),
        onPeriod: (edge) => (cpu[edge] = server.cpuSeconds()),
      }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      await rotating.stop();
      const verified = await verifier.stop();
      const problems = [
        ...(result instanceof Error ? [result.message] : []),
        ...(verified.calls === 0 ? ["the verifying client completed no call"] : []),
        ...(verified.failures.length > 0
          ? [
              `${verified.failures.length} of ${verified.calls} verified calls failed:`,
              ...verified.failures.slice(0, 10),
            ]
          : []),
      ];
      if (result instanceof Error || problems.length > 0) {
        const output = server.output().trim();
        throw new Error(`${target.name}:\n${problems.join("\n")}${output ? `\nserver output (tail):\n${output}` : ""}`);
      }
      const cpuSeconds = cpu.end - cpu.start;
      return {
        target,
        round,
        ...result,
        cpuPercent: (cpuSeconds / durationSeconds) * 100,
        cpuPerRequestUs: (cpuSeconds / result.requests) * 1e6,
        peakRssMb: server.peakRss() / 2 ** 20,
        verifiedCalls: verified.calls,
      };
    } finally {
      await server.stop();
      running.delete(server);
    }
  }

  const samples: Sample[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Alternate the order so neither server always runs first (or last) in a round.
    for (const target of round % 2 ? targets : [...targets].reverse()) {
      const s = await measure(target, round);
      samples.push(s);
      log(
        `round ${round}/${rounds} ${targetId(target)}: ${Math.round(s.rps)} req/s, p50 ${s.p50Ms.toFixed(1)} ms, ` +
          `p99 ${s.p99Ms.toFixed(1)} ms, server CPU ${Math.round(s.cpuPercent)} % (${Math.round(s.cpuPerRequestUs)} µs/request), ` +
          `peak RSS ${Math.round(s.peakRssMb)} MB, ${s.verifiedCalls} verified calls`,
      );
    }
  }

  const info: RunInfo = {
    date: new Date().toISOString().slice(0, 16).replace("T", " "),
    commit: gitCommit(),
    node: process.version,
    h2load: h2loadVersion,
    cpus: availableParallelism(),
    loadAverage,
    users,
    rounds,
    ...load,
  };
  return renderReport(title, info, targets, samples, goals);
}

/** `getuser`: 100,000 users, all in the cache (issue 3). */
export function getUser(): Promise<string> {
  return runGetUser("GetUser benchmark", positive("BENCH_USERS", 100_000), {
    issue: "issue 3",
    grpcRatio: 1.0,
    otherRatio: 0.8,
    p99NotAboveBaseline: true,
    maxRssMb: 200,
  });
}

/** `getuser-1m`: 1,000,000 users, random ids over all of them, default configuration (issue 14). */
export function getUser1m(): Promise<string> {
  return runGetUser("GetUser at 1M users", positive("BENCH_USERS_1M", 1_000_000), {
    issue: "issue 14",
    grpcRatio: 1.5,
    grpcFloor: 1.0,
    maxRssMb: 256,
  });
}

/** Stops every server and the database of a scenario still running (on SIGINT). */
export { cleanUp };
