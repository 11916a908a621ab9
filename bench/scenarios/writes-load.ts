/**
 * The load generator of the write scenarios, in a child process of its own so that its CPU is not counted
 * as the server's (and the server's CPU is read from /proc, not estimated).
 *
 * The child keeps `inFlight` calls in flight (closed loop) over `connections` HTTP/2 connections, one
 * connect-node gRPC transport each, for a warm-up and then a measured period. Each call is checked: an
 * UpdateUser answers with the user and the display name it set, a CreateUser with the email it sent, a
 * DeleteUser with the user it named, deleted. Any failed call (an error or a wrong answer, warm-up included)
 * fails the load. Throughput and latency count the calls that complete in the measured period; the child
 * reads the server's (and PostgreSQL's) CPU time from /proc at the period's two edges itself, so the
 * numbers and the period are the same.
 *
 * `runServiceLoad` (the parent's side) forks this file and resolves with the child's result.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { benchUserId } from "../seed.ts";
import { postgresCpuSeconds } from "./pg-cluster.ts";

/** The write a load makes. */
export type WriteOp = "update" | "create" | "delete";

/** What the child is told (as JSON in WRITES_LOAD). */
export interface LoadConfig {
  op: WriteOp;
  origin: string;
  token: string;
  inFlight: number;
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  /** update: random users among bench users 0 .. users-1. */
  users: number;
  /** delete: each of the bench users first .. first+count-1 at most once, in random order. */
  deleteRange?: { first: number; count: number };
  /** create: emails are `writes-<tag>-<n>@bench.example`, unique for a tag. */
  tag: string;
  /** The server's pid (its CPU time is read at the period's edges). */
  serverPid: number;
  /** The postmaster's pid of a local PostgreSQL, to read its CPU time too. */
  postgresPid?: number;
}

/** What a load measured. */
export interface LoadResult {
  type: "result";
  /** Calls that succeeded, warm-up included (each wrote one change-log row). */
  okCalls: number;
  /** Calls that completed (successfully) in the measured period. */
  measured: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  failures: number;
  firstFailures: string[];
  /** Server CPU seconds over the measured period (user + system). */
  serverCpuSeconds: number;
  /** The system (kernel) part of serverCpuSeconds: socket and other syscalls. */
  serverSystemSeconds: number;
  /** PostgreSQL CPU seconds over the measured period (NaN when not local). */
  postgresCpuSeconds: number;
  /** This process's CPU seconds over the measured period. */
  clientCpuSeconds: number;
}

const USER_HZ = 100;

/** CPU seconds (user, system) of a process so far. */
function cpuOf(pid: number): [user: number, system: number] {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return [Number(fields[11]) / USER_HZ, Number(fields[12]) / USER_HZ];
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The child: runs one load and sends its result to the parent. */
async function main(config: LoadConfig): Promise<LoadResult> {
  const managers = Array.from({ length: config.connections }, () => new Http2SessionManager(config.origin));
  const clients = managers.map((sessionManager) =>
    createClient(
      UserService,
      createGrpcTransport({
        baseUrl: config.origin,
        sessionManager,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${config.token}`);
            return next(req);
          },
        ],
      }),
    ),
  );

  // DeleteUser: every user of the range at most once, in random order.
  let deleteOrder: Int32Array | undefined;
  let nextDelete = 0;
  if (config.op === "delete") {
    const range = config.deleteRange;
    if (!range) throw new Error("a delete load needs deleteRange");
    deleteOrder = new Int32Array(range.count);
    for (let i = 0; i < range.count; i++) deleteOrder[i] = range.first + i;
    for (let i = range.count - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [deleteOrder[i], deleteOrder[j]] = [deleteOrder[j], deleteOrder[i]];
    }
  }
  let created = 0;
  let k = 0;
  /** A call still unanswered after this long fails (no load should ever wait that long). */
  const opts = { timeoutMs: 30_000 };

  /** One call: resolves when it succeeded with the right answer, throws otherwise. */
  const call = async (): Promise<void> => {
    const client = clients[k++ % clients.length];
    if (config.op === "update") {
      const id = benchUserId(Math.floor(Math.random() * config.users));
      const displayName = `Bench Writer ${Math.floor(Math.random() * 1e9)}`;
      const res = await client.updateUser(
        { user: { id, displayName, etag: "" }, updateMask: { paths: ["display_name"] } },
        opts,
      );
      if (res.user?.id !== id || res.user.displayName !== displayName)
        throw new Error(`UpdateUser ${id}: answered ${res.user?.id} "${res.user?.displayName}"`);
    } else if (config.op === "create") {
      const n = created++;
      const email = `writes-${config.tag}-${n}@bench.example`;
      const res = await client.createUser({ user: { email, displayName: `Writes User ${n}` } }, opts);
      if (res.user?.email !== email || !res.user.id)
        throw new Error(`CreateUser ${email}: answered ${res.user?.email}`);
    } else {
      const order = deleteOrder as Int32Array;
      if (nextDelete >= order.length)
        throw new Error(`DeleteUser: all ${order.length} users set aside for the load are deleted (raise BENCH_USERS)`);
      const id = benchUserId(order[nextDelete++]);
      const res = await client.deleteUser({ userId: id, etag: "" }, opts);
      if (res.user?.id !== id || res.user.state !== UserState.DELETED)
        throw new Error(`DeleteUser ${id}: answered ${res.user?.id} in state ${res.user?.state}`);
    }
  };

  const started = performance.now();
  const periodStart = started + config.warmupSeconds * 1000;
  const periodEnd = periodStart + config.durationSeconds * 1000;
  const latencies: number[] = [];
  const failures: string[] = [];
  let failureCount = 0;
  let okCalls = 0;
  let stop = false;

  const edges = { server: [0, 0], serverSystem: [0, 0], postgres: [0, 0], client: [0, 0] };
  const sample = (i: 0 | 1) => {
    const [user, system] = cpuOf(config.serverPid);
    edges.server[i] = user + system;
    edges.serverSystem[i] = system;
    edges.postgres[i] = config.postgresPid ? postgresCpuSeconds(config.postgresPid) : Number.NaN;
    const c = process.cpuUsage();
    edges.client[i] = (c.user + c.system) / 1e6;
  };
  const timers = [
    setTimeout(() => sample(0), Math.max(0, periodStart - performance.now())),
    setTimeout(
      () => {
        sample(1);
        stop = true;
      },
      Math.max(0, periodEnd - performance.now()),
    ),
  ];

  const worker = async () => {
    while (!stop && failureCount === 0) {
      const t0 = performance.now();
      try {
        await call();
        okCalls++;
        const t1 = performance.now();
        if (t1 >= periodStart && t1 < periodEnd) latencies.push(t1 - t0);
      } catch (err) {
        failureCount++;
        if (failures.length < 10) failures.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: config.inFlight }, worker));
  for (const t of timers) clearTimeout(t);
  for (const m of managers) m.abort();

  const sorted = Float64Array.from(latencies).sort();
  return {
    type: "result",
    okCalls,
    measured: latencies.length,
    seconds: config.durationSeconds,
    rps: latencies.length / config.durationSeconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / (latencies.length || 1),
    failures: failureCount,
    firstFailures: failures,
    serverCpuSeconds: edges.server[1] - edges.server[0],
    serverSystemSeconds: edges.serverSystem[1] - edges.serverSystem[0],
    postgresCpuSeconds: edges.postgres[1] - edges.postgres[0],
    clientCpuSeconds: edges.client[1] - edges.client[0],
  };
}

// ---------------------------------------------------------------------------------------------------------
// The parent's side

const children = new Set<ChildProcess>();

/** Runs one load in a child process; resolves with its result (failures included: the caller decides). */
export function runServiceLoad(config: LoadConfig): Promise<LoadResult> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, WRITES_LOAD: JSON.stringify(config) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(child);
  return new Promise<LoadResult>((resolve, reject) => {
    let result: LoadResult | undefined;
    child.on("message", (m: LoadResult | { type: "error"; message: string }) => {
      if (m.type === "result") result = m;
      else reject(new Error(`load generator: ${m.message}`));
    });
    child.once("exit", (code, signal) => {
      children.delete(child);
      if (result) resolve(result);
      else reject(new Error(`load generator exited (${code ?? signal}) without a result`));
    });
  });
}

/** Kills the load generators still running (on SIGINT or a failure). */
export function stopLoads(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

if (import.meta.main) {
  const config = JSON.parse(process.env.WRITES_LOAD as string) as LoadConfig;
  try {
    const result = await main(config);
    process.send?.(result, undefined, {}, () => process.exit(0));
  } catch (err) {
    process.send?.({ type: "error", message: err instanceof Error ? err.message : String(err) }, undefined, {}, () =>
      process.exit(1),
    );
  }
}
