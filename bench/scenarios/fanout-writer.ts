/**
 * The fan-out scenario's writer, a child process (so neither its CPU nor its event loop is the parent's):
 * UpdateUser over gRPC (connect-node, HTTP/2, WRITER_CONNECTIONS connections used in turn) on a fixed
 * schedule, open-loop: write n is sent at start + n / rate whether or not earlier writes have answered.
 *
 * Each write replaces the target's labels (update_mask `labels`) with its own labels (the filter's `team`
 * kept) plus `bench_run` (the phase), `bench_n` (the write's number) and `bench_sent` (epoch ms at send), so
 * a watcher knows which write each event is, and its filter keeps matching the user before and after.
 *
 * IPC: `warmup` (each target written once, 8 at a time; answers `warmed`), `run` (answers `result`).
 * Environment: FANOUT_BASE_URL, FANOUT_TOKEN.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import {
  bitsToBase64,
  epochNow,
  Histogram,
  newBits,
  setBit,
  type WriterResult,
  type WriterRun,
  type WriterWarmed,
  type WriterWarmup,
  type WriteTarget,
} from "./fanout-shared.ts";

/** HTTP/2 connections the writer spreads its calls over (100 streams each at the service's default cap). */
const WRITER_CONNECTIONS = 4;
/** A write not answered by then counts as failed (DEADLINE_EXCEEDED). */
const WRITE_TIMEOUT_MS = 30_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

if (import.meta.main) {
  const baseUrl = process.env.FANOUT_BASE_URL as string;
  const token = process.env.FANOUT_TOKEN as string;
  const managers = Array.from({ length: WRITER_CONNECTIONS }, () => new Http2SessionManager(baseUrl));
  const clients = managers.map((sessionManager) =>
    createClient(
      UserService,
      createGrpcTransport({
        baseUrl,
        sessionManager,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ],
      }),
    ),
  );
  const update = (i: number, target: WriteTarget, labels: Record<string, string>) =>
    clients[i % clients.length].updateUser(
      { user: { id: target.id, labels: { ...target.labels, ...labels } }, updateMask: { paths: ["labels"] } },
      { timeoutMs: WRITE_TIMEOUT_MS },
    );
  // gRPC's canonical names (UNAVAILABLE, DEADLINE_EXCEEDED), not connect's enum names (Unavailable, ...).
  const codeName = (err: unknown) =>
    err instanceof ConnectError
      ? Code[err.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()
      : `CLIENT_ERROR (${err instanceof Error ? err.name : typeof err})`;
  const describe = (err: unknown) =>
    err instanceof ConnectError ? `${codeName(err)}: ${err.rawMessage}` : String(err);

  async function warmup(m: WriterWarmup): Promise<WriterWarmed> {
    const failures: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < m.targets.length) {
          const i = next++;
          await update(i, m.targets[i], { bench_run: "warmup", bench_sent: epochNow().toFixed(1) }).catch((err) =>
            failures.push(describe(err)),
          );
        }
      }),
    );
    return { type: "warmed", failures: failures.slice(0, 10) };
  }

  async function run(m: WriterRun): Promise<WriterResult> {
    const cpu0 = process.cpuUsage();
    const ok = newBits(m.writes);
    let okCount = 0;
    const failuresByCode: Record<string, number> = {};
    const firstFailures: string[] = [];
    const latency = new Histogram();
    const okPerSecond: number[] = [];
    const interval = 1000 / m.rate;
    let maxSendLagMs = 0;
    let lastSendMs = 0;
    let lastDoneMs = 0;
    const calls: Promise<void>[] = [];
    const start = performance.now();

    const send = (n: number) => {
      const sentAt = performance.now();
      maxSendLagMs = Math.max(maxSendLagMs, sentAt - (start + n * interval));
      lastSendMs = sentAt - start;
      const target = m.targets[n % m.targets.length];
      const labels = { bench_run: m.runId, bench_n: String(n), bench_sent: epochNow().toFixed(1) };
      return update(n, target, labels).then(
        () => {
          const doneAt = performance.now();
          latency.record(doneAt - sentAt);
          setBit(ok, n);
          okCount++;
          const second = Math.floor((doneAt - start) / 1000);
          while (okPerSecond.length <= second) okPerSecond.push(0);
          okPerSecond[second]++;
          lastDoneMs = Math.max(lastDoneMs, doneAt - start);
        },
        (err: unknown) => {
          const doneAt = performance.now();
          latency.record(doneAt - sentAt);
          lastDoneMs = Math.max(lastDoneMs, doneAt - start);
          const code = codeName(err);
          failuresByCode[code] = (failuresByCode[code] ?? 0) + 1;
          if (firstFailures.length < 10) firstFailures.push(`write ${n} (${target.id}): ${describe(err)}`);
        },
      );
    };

    for (let n = 0; n < m.writes; ) {
      // Every write whose time has come, then sleep until the next one is due.
      const now = performance.now();
      while (n < m.writes && start + n * interval <= now) calls.push(send(n++));
      if (n < m.writes) await sleep(Math.max(0, start + n * interval - performance.now()));
    }
    await Promise.all(calls);
    const cpu = process.cpuUsage(cpu0);
    return {
      type: "result",
      writes: m.writes,
      ok: bitsToBase64(ok),
      okCount,
      failuresByCode,
      firstFailures,
      latency: latency.sparse(),
      maxSendLagMs,
      lastSendMs,
      lastDoneMs,
      okPerSecond,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  }

  process.on("message", (m: WriterWarmup | WriterRun) => {
    const done = m.type === "warmup" ? warmup(m) : run(m);
    void done.then((reply) => process.send?.(reply));
  });
  // The parent is gone (or done with us): nothing left to do.
  process.on("disconnect", () => {
    for (const m of managers) m.abort();
    process.exit(0);
  });
}
