/**
 * Prometheus metrics: what operators alert on (error rates, latency, open streams, a starved database pool)
 * without reading logs. Each app has its own registry, so test servers in one process do not mix their
 * counts; process metrics (CPU, memory, event loop) are process-wide and collected once.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { HttpRoute } from "../transport/server.ts";

/** Connections of the database pool, read at every scrape. */
export interface PoolStats {
  inUse: number;
  idle: number;
  /** Callers waiting for a connection: above zero for long means the pool is too small. */
  waiting: number;
}

/** The RPC instruments the metrics interceptor feeds. */
export interface RpcMetrics {
  /** Finished calls by service, method, protocol and code. */
  readonly handled: Counter<"service" | "method" | "protocol" | "code">;
  /** Unary call latency; streams are left out, as their length is the caller's choice, not latency. */
  readonly latency: Histogram<"service" | "method" | "protocol" | "code">;
  /** Streams open now, by service and method. */
  readonly openStreams: Gauge<"service" | "method">;
}

/** An app's metrics. */
export interface Metrics {
  /** The app's registry, for metrics that need more than `registerGauge`. */
  readonly registry: Registry;
  readonly rpc: RpcMetrics;
  /** Registers a gauge read at scrape time, so features (watchers, change-log lag) need no prom-client code. */
  registerGauge(name: string, help: string, read: () => number | Promise<number>): void;
  /**
   * Registers a counter with one label, shown at zero for each of `values` from the start (so rate() works
   * before the first increment); features get an `inc` and need no prom-client code.
   */
  registerCounter(
    name: string,
    help: string,
    label: string,
    values: readonly string[],
  ): (value: string, by: number) => void;
  /** Everything in Prometheus text format: process metrics, then the app's. */
  scrape(): Promise<string>;
}

let processRegistry: Registry | undefined;

/** The counters every `pg` pool keeps; MikroORM's pool and the raw query pool are both `pg` pools. */
export interface PgPoolCounters {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** Reads a `pg` pool's counters as PoolStats. */
export function pgPoolStats(pool: PgPoolCounters): () => PoolStats {
  return () => ({ inUse: pool.totalCount - pool.idleCount, idle: pool.idleCount, waiting: pool.waitingCount });
}

/** Creates an app's registry; `pools` reports each database pool by name. */
export function createMetrics(opts: { pools?: Record<string, () => PoolStats> } = {}): Metrics {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  const registry = new Registry();
  const registers = [registry];
  const pools = Object.entries(opts.pools ?? {});
  if (pools.length > 0) {
    new Gauge({
      name: "db_pool_connections",
      help: "Database pool connections by pool and state (in_use, idle).",
      labelNames: ["pool", "state"],
      registers,
      collect() {
        for (const [name, stats] of pools) {
          const s = stats();
          this.set({ pool: name, state: "in_use" }, s.inUse);
          this.set({ pool: name, state: "idle" }, s.idle);
        }
      },
    });
    new Gauge({
      name: "db_pool_waiting_requests",
      help: "Callers waiting for a connection, by pool.",
      labelNames: ["pool"],
      registers,
      collect() {
        for (const [name, stats] of pools) this.set({ pool: name }, stats().waiting);
      },
    });
  }
  const rpcLabels = ["service", "method", "protocol", "code"] as const;
  const processMetrics = processRegistry;
  return {
    registry,
    rpc: {
      handled: new Counter({
        name: "rpc_server_handled_total",
        help: "RPCs finished, by code.",
        labelNames: rpcLabels,
        registers,
      }),
      latency: new Histogram({
        name: "rpc_server_handling_seconds",
        help: "Latency of unary RPCs, from the first interceptor to the response.",
        labelNames: rpcLabels,
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      }),
      openStreams: new Gauge({
        name: "rpc_server_open_streams",
        help: "Streaming RPCs open now.",
        labelNames: ["service", "method"],
        registers,
      }),
    },
    registerGauge(name, help, read) {
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          this.set(await read());
        },
      });
    },
    registerCounter(name, help, label, values) {
      const counter = new Counter({ name, help, labelNames: [label], registers });
      for (const value of values) counter.inc({ [label]: value }, 0);
      return (value, by) => counter.inc({ [label]: value }, by);
    },
    async scrape() {
      return (await processMetrics.metrics()) + (await registry.metrics());
    },
  };
}

/** `GET /metrics` (and HEAD) in the Prometheus text format, for the scraper. */
export function createMetricsRoute(metrics: Metrics): HttpRoute {
  return async (req, res) => {
    if ((req.url ?? "").split("?", 1)[0] !== "/metrics") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
      res.end("method not allowed\n");
      return true;
    }
    const body = await metrics.scrape();
    res.writeHead(200, { "content-type": metrics.registry.contentType });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  };
}
