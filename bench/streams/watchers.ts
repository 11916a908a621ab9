/**
 * A child process of the WatchUsers fan-out benchmark: W watchers spread over C HTTP/2 connections (one
 * connect-node gRPC transport each, W/C streams per connection), all watching every change (no filter,
 * no snapshot). Each UPDATED event whose user carries the label `bench_phase = "measure"` adds two
 * latencies to histograms: from `bench_sent` (the writer's clock when it sent UpdateUser, epoch ms) and
 * from the event's event_time (the change_time PostgreSQL stamped in the writing transaction, just before
 * its commit) to the moment this process decoded the message.
 *
 * Talks to the parent over IPC: it sends `progress` every 250 ms (watchers that have seen an event,
 * measured events so far, errors) and, on `finish`, the `result` (histograms, per-watcher counts, errors,
 * its CPU time), then ends its streams and exits.
 *
 * Environment: WATCH_BASE_URL, WATCH_TOKEN, WATCH_WATCHERS, WATCH_CONNECTIONS.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { UserService, WatchEventType } from "../../gen/user/v1/user_service_pb.js";

/** Histogram resolution and range: 0.1 ms buckets up to 10 s (the last bucket takes everything above). */
export const BUCKET_MS = 0.1;
export const BUCKETS = 100_000;

export interface WatchersProgress {
  type: "progress";
  ready: number;
  measured: number;
  errors: number;
}
export interface WatchersResult {
  type: "result";
  watchers: number;
  /** Latency from the writer's send time, histogram of BUCKET_MS buckets (sparse: [bucket, count] pairs). */
  fromSent: [number, number][];
  /** Latency from the change's event_time. */
  fromEventTime: [number, number][];
  /** Measured events received by each watcher. */
  perWatcher: number[];
  errors: string[];
  cpuSeconds: number;
}

const now = () => performance.timeOrigin + performance.now();

function record(hist: Uint32Array, ms: number): void {
  hist[Math.min(BUCKETS - 1, Math.max(0, Math.floor(ms / BUCKET_MS)))]++;
}

function sparse(hist: Uint32Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < hist.length; i++) if (hist[i] > 0) out.push([i, hist[i]]);
  return out;
}

if (import.meta.main) {
  const baseUrl = process.env.WATCH_BASE_URL as string;
  const token = process.env.WATCH_TOKEN as string;
  const watchers = Number(process.env.WATCH_WATCHERS);
  const connections = Number(process.env.WATCH_CONNECTIONS);
  const send = (m: WatchersProgress | WatchersResult) => process.send?.(m);

  const fromSent = new Uint32Array(BUCKETS);
  const fromEventTime = new Uint32Array(BUCKETS);
  const perWatcher = new Array<number>(watchers).fill(0);
  const seenAny = new Array<boolean>(watchers).fill(false);
  const errors: string[] = [];
  let ready = 0;
  let measured = 0;
  const abort = new AbortController();

  const managers = Array.from({ length: connections }, () => new Http2SessionManager(baseUrl));
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

  const runs = Array.from({ length: watchers }, async (_, w) => {
    try {
      for await (const e of clients[w % connections].watchUsers({}, { signal: abort.signal })) {
        if (e.type !== WatchEventType.UPDATED) continue;
        const t = now();
        if (!seenAny[w]) {
          seenAny[w] = true;
          ready++;
        }
        const labels = e.user?.labels;
        if (labels?.bench_phase !== "measure") continue;
        record(fromSent, t - Number(labels.bench_sent));
        if (e.eventTime) record(fromEventTime, t - (Number(e.eventTime.seconds) * 1000 + e.eventTime.nanos / 1e6));
        perWatcher[w]++;
        measured++;
      }
      if (!abort.signal.aborted) errors.push(`watcher ${w}: stream ended`);
    } catch (err) {
      if (!abort.signal.aborted) errors.push(`watcher ${w}: ${err instanceof Error ? err.message : String(err)}`);
    }
  });

  const timer = setInterval(() => send({ type: "progress", ready, measured, errors: errors.length }), 250);
  process.on("message", (m: { type: string }) => {
    if (m.type !== "finish") return;
    clearInterval(timer);
    const cpu = process.cpuUsage();
    const result: WatchersResult = {
      type: "result",
      watchers,
      fromSent: sparse(fromSent),
      fromEventTime: sparse(fromEventTime),
      perWatcher,
      errors: errors.slice(0, 20),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    // Only once the result is handed to the channel: disconnecting earlier can drop it.
    process.send?.(result, undefined, {}, () => {
      abort.abort();
      void Promise.allSettled(runs).then(() => {
        for (const m of managers) m.abort();
        process.disconnect();
        setTimeout(() => process.exit(0), 200).unref();
      });
    });
  });
}
