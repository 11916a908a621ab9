/**
 * Auth events (docs/adr/0023-auth-events.md): does recording them slow Login? The service as deployed (the
 * server bundle) with recording on, and the same with AUTH_EVENTS=false, loaded side by side at the same time
 * with a closed loop of Logins each over gRPC (connect-node, one HTTP/2 connection) from this process, so
 * that both see the same machine (on a shared machine, loads taken in turn differ by tens of percent from
 * other work alone); reported as ratios (on / off) of logins per second, p50, p99 and server CPU per login. A Login is
 * an argon2id verification (tens of ms), so the recorder's own cost is also measured in this process: the
 * µs one `record` takes on the request path, and the µs per event of writing batches (off the path).
 *
 * Environment (all optional): BENCH_DATABASE_URL, BENCH_DURATION (10 s per round), BENCH_ROUNDS (5),
 * BENCH_LOGIN_CONCURRENCY (8 logins in flight), BENCH_RECORDS (200000 events for the in-process part).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { availableParallelism, cpus, loadavg } from "node:os";
import { createClient, createContextValues } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import pino from "pino";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { createAuthEventRecorder } from "../../src/auth/auth-event-recorder.ts";
import { kClientAddress } from "../../src/rpc/context.ts";
import { benchDatabase } from "../database.ts";
import { benchAdminToken, seed } from "../seed.ts";
import { gitCommit, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";

const num = (name: string, fallback: number) => Number(process.env[name] || fallback);
const log = (line: string) => process.stderr.write(`bench:auth-events: ${line}\n`);

const running = new Set<ServerProcess>();
const cleanups: (() => Promise<void>)[] = [() => Promise.all([...running].map((s) => s.stop())).then(() => {})];
export async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
}

interface Load {
  /** The 1-minute load average when the load started (other work on the machine). */
  loadAverage: number;
  perSecond: number;
  p50: number;
  p99: number;
  cpuUsPerLogin: number;
  logins: number;
  failures: number;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `concurrency` callers logging in back to back for `ms`. */
async function loginLoad(
  server: ServerProcess,
  accounts: { email: string; password: string }[],
  concurrency: number,
  ms: number,
): Promise<Load> {
  const auth = createClient(AuthService, createGrpcTransport({ baseUrl: server.origin }));
  const latencies: number[] = [];
  let failures = 0;
  let n = 0;
  const loadAverage = loadavg()[0];
  const cpu0 = server.cpuSeconds();
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const started = performance.now();
        try {
          await auth.login(accounts[n++ % accounts.length]);
          latencies.push(performance.now() - started);
        } catch {
          failures++;
        }
      }
    }),
  );
  const cpu = server.cpuSeconds() - cpu0;
  latencies.sort((a, b) => a - b);
  return {
    loadAverage,
    perSecond: (latencies.length / ms) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUsPerLogin: (cpu * 1e6) / Math.max(1, latencies.length),
    logins: latencies.length,
    failures,
  };
}

/** The recorder alone, in this process: µs per `record` (request path) and per event written (batches). */
async function recorderCost(databaseUrl: string, events: number) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const recorder = createAuthEventRecorder({ pool, log: pino({ level: "warn" }), everyMs: 3_600_000, max: events });
  const values = createContextValues().set(kClientAddress, "203.0.113.7");
  const call = { values, requestHeader: new Headers({ "user-agent": "bench-auth-events/1.0 (linux; x64)" }) };
  const userId = randomUUID();
  const sessionId = randomUUID();
  // Warm-up (JIT), then written and deleted, so the measured part starts from an empty buffer.
  for (let i = 0; i < 10_000; i++)
    recorder.record("LOGIN_SUCCEEDED", call, { userId, sessionId, email: "a@b.example" });
  await recorder.flush();
  const started = performance.now();
  for (let i = 0; i < events; i++) {
    recorder.record("LOGIN_SUCCEEDED", call, { userId, sessionId, email: "bench-user@bench.example" });
  }
  const recordUs = ((performance.now() - started) * 1000) / events;
  const written = performance.now();
  while (recorder.buffered() > 0) await recorder.flush();
  const writeUs = ((performance.now() - written) * 1000) / events;
  await recorder.close();
  await pool.query("delete from auth_events where user_id = $1", [userId]);
  await pool.end();
  return { recordUs, writeUs };
}

/** The scenario: returns its markdown report. */
export async function authEvents(): Promise<string> {
  const durationMs = num("BENCH_DURATION", 10) * 1000;
  const rounds = num("BENCH_ROUNDS", 5);
  const concurrency = num("BENCH_LOGIN_CONCURRENCY", 8);
  const records = num("BENCH_RECORDS", 200_000);
  const load = loadavg()[0];
  try {
    const databaseUrl = await benchDatabase("auth-events", cleanups, log);
    await seed(databaseUrl, 1000);
    const env: ServerEnv & Record<string, string> = {
      DATABASE_URL: databaseUrl,
      JWT_SECRET: randomBytes(48).toString("base64url"),
      JWT_ISSUER: "user-service",
      JWT_AUDIENCE: "user-service",
      DB_POOL_MAX: "10",
      RATE_LIMIT_PER_SECOND: "1000000",
      RATE_LIMIT_BURST: "1000000",
      RATE_LIMIT_LOGIN_PER_MINUTE: "1000000",
    };
    const start = async (on: boolean) => {
      const s = await startServer("service", { ...env, AUTH_EVENTS: String(on) } as ServerEnv);
      running.add(s);
      return s;
    };
    const stop = async (s: ServerProcess) => {
      await s.stop();
      running.delete(s);
    };

    // Accounts with real passwords, made through the API so their hashes are the service's own.
    const first = await start(true);
    const users = createClient(UserService, createGrpcTransport({ baseUrl: first.origin }));
    const asAdmin = { headers: { authorization: `Bearer ${benchAdminToken(env, 3600)}` } };
    const accounts = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        const email = `events-${i}-${randomUUID().slice(0, 6)}@bench.example`;
        const password = `events password ${i}`;
        await users.createUser({ user: { email, displayName: `Events ${i}` }, password }, asAdmin);
        return { email, password };
      }),
    );
    log("warming up");
    await loginLoad(first, accounts, concurrency, 2000);
    await stop(first);

    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    cleanups.push(() => client.end());
    const count = async () =>
      Number((await client.query<{ n: string }>("select count(*) as n from auth_events")).rows[0].n);
    const results: { on: Load; off: Load; recorded: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      log(`round ${r + 1}/${rounds}: recording on and off side by side, ${concurrency} logins in flight each`);
      // Started in flipped order each round; loaded at the same time, so both see the same machine.
      const [a, b] = r % 2 === 0 ? [await start(true), await start(false)] : [await start(false), await start(true)];
      const [serverOn, serverOff] = r % 2 === 0 ? [a, b] : [b, a];
      const before = await count();
      const [on, off] = await Promise.all([
        loginLoad(serverOn, accounts, concurrency, durationMs),
        loginLoad(serverOff, accounts, concurrency, durationMs),
      ]);
      await Promise.all([stop(serverOn), stop(serverOff)]);
      // Every login of the "on" server recorded (shutdown writes what is buffered), none of the "off" one.
      const recorded = (await count()) - before;
      if (recorded !== on.logins) throw new Error(`${on.logins} logins with recording on, ${recorded} events`);
      results.push({ on, off, recorded });
    }
    log(`recorder alone: ${records} events in this process`);
    const cost = await recorderCost(databaseUrl, records);

    const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
    const med = (pick: (l: Load) => number, which: "on" | "off") => median(results.map((x) => pick(x[which])));
    const ratio = (pick: (l: Load) => number) => med(pick, "on") / med(pick, "off");
    const row = (name: string, which: "on" | "off") =>
      `| ${name} | ${f(med((l) => l.perSecond, which))} | ${f(med((l) => l.p50, which))} | ${f(med((l) => l.p99, which))} | ` +
      `${f(
        med((l) => l.cpuUsPerLogin, which),
        0,
      )} | ${results.reduce((n, x) => n + x[which].failures, 0)} |`;
    const perRound = results.map(
      (x, i) =>
        `| ${i + 1} | ${f(x.on.perSecond)} / ${f(x.off.perSecond)} | ${f(x.on.perSecond / x.off.perSecond, 3)}x | ` +
        `${f(x.on.cpuUsPerLogin / x.off.cpuUsPerLogin, 3)}x | ${f(x.on.loadAverage, 2)} |`,
    );
    const roundRatio = median(results.map((x) => x.on.perSecond / x.off.perSecond));
    const failures = results.reduce((n, x) => n + x.on.failures + x.off.failures, 0);
    if (failures > 0) throw new Error(`${failures} logins failed`);
    return [
      "## Auth events: Login with recording on and off",
      "",
      `Commit ${gitCommit()}, ${cpus()[0]?.model ?? "cpu"} x${availableParallelism()}, load average ${f(load, 2)} before the run; ` +
        `both servers loaded at the same time, ${concurrency} logins in flight each over gRPC, ${durationMs / 1000} s per round, ` +
        `median of ${rounds} rounds (servers started afresh each round).`,
      "",
      "| recording | logins/s | p50 ms | p99 ms | server CPU µs/login | failures |",
      "| --- | ---: | ---: | ---: | ---: | ---: |",
      row("on (default)", "on"),
      row("off (AUTH_EVENTS=false)", "off"),
      "",
      `On / off: logins/s ${f(
        ratio((l) => l.perSecond),
        3,
      )}x, p50 ${f(
        ratio((l) => l.p50),
        3,
      )}x, ` +
        `p99 ${f(
          ratio((l) => l.p99),
          3,
        )}x, CPU per login ${f(
          ratio((l) => l.cpuUsPerLogin),
          3,
        )}x. ` +
        `Events recorded per round: ${results.map((x) => x.recorded).join(", ")} (every login).`,
      "",
      `Per round (the median of these logins/s ratios: ${f(roundRatio, 3)}x):`,
      "",
      "| round | logins/s on / off | ratio | CPU per login ratio | load average at start |",
      "| ---: | ---: | ---: | ---: | ---: |",
      ...perRound,
      "",
      `The recorder alone (${records} events, this process): \`record\` ${f(cost.recordUs, 2)} µs per event on the ` +
        `request path; writing them in batches of 500 ${f(cost.writeUs, 2)} µs per event, off the path.`,
      "",
    ].join("\n");
  } finally {
    await cleanUp();
  }
}
