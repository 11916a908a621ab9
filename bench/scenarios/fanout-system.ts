/**
 * What the fan-out scenario reads around the processes it runs: CPU time and RSS from /proc, the machine's
 * busy time from /proc/stat, PostgreSQL's CPU (embedded: the postmaster and its backends), and the service's
 * own view from `GET /metrics` (event-loop delay, database pools, open watch streams), scraped once a second.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Clock ticks per second of /proc times (100 on every Linux architecture Node supports). */
const USER_HZ = 100;

/** Fields of /proc/<pid>/stat after the command name: [0] is the state (field 3). */
function statFields(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) of a process so far; 0 when it is gone. */
export function cpuOf(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / USER_HZ : 0;
}

/** VmRSS of a process now, in bytes (0 when it is gone). */
export function rssNow(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already counted in user).
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3] - cpu[4], total };
}

/**
 * CPU seconds of an embedded PostgreSQL so far: the postmaster's own and reaped children's time, plus its
 * live children's (backends, walwriter, ...). `dataDir` holds postmaster.pid. Undefined when unreadable.
 */
export function postgresCpu(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return undefined;
  }
  const own = statFields(pid);
  if (!own) return undefined;
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / USER_HZ;
}

/** One scrape of the service's /metrics. */
export interface MetricsSample {
  /** Event-loop delay over the last interval (prom-client resets its histogram at each scrape), ms. */
  lagP50: number;
  lagP99: number;
  lagMax: number;
  ormInUse: number;
  ormWaiting: number;
  queriesInUse: number;
  queriesWaiting: number;
  watchStreams: number;
}

function value(text: string, pattern: RegExp): number {
  const m = pattern.exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

function parseMetrics(text: string): MetricsSample {
  const pool = (name: string, state: string) =>
    value(text, new RegExp(`^db_pool_connections\\{pool="${name}",state="${state}"\\} (\\S+)$`, "m"));
  const waiting = (name: string) =>
    value(text, new RegExp(`^db_pool_waiting_requests\\{pool="${name}"\\} (\\S+)$`, "m"));
  return {
    lagP50: value(text, /^nodejs_eventloop_lag_p50_seconds (\S+)$/m) * 1000,
    lagP99: value(text, /^nodejs_eventloop_lag_p99_seconds (\S+)$/m) * 1000,
    lagMax: value(text, /^nodejs_eventloop_lag_max_seconds (\S+)$/m) * 1000,
    ormInUse: pool("orm", "in_use"),
    ormWaiting: waiting("orm"),
    queriesInUse: pool("queries", "in_use"),
    queriesWaiting: waiting("queries"),
    watchStreams: value(text, /^rpc_server_open_streams\{[^}]*method="WatchUsers"[^}]*\} (\S+)$/m),
  };
}

/** Scrapes `${origin}/metrics` every `intervalMs` until stopped; failed scrapes are counted, not fatal. */
export function scrapeMetrics(
  origin: string,
  intervalMs: number,
): { stop(): Promise<{ samples: MetricsSample[]; failures: number }> } {
  const samples: MetricsSample[] = [];
  let failures = 0;
  let stopped = false;
  const loop = (async () => {
    // Once first, so the interval of the first kept sample starts now (the histogram is reset per scrape).
    await fetch(`${origin}/metrics`).then(
      (r) => r.text(),
      () => "",
    );
    while (!stopped) {
      await new Promise((r) => setTimeout(r, intervalMs));
      if (stopped) break;
      try {
        const res = await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(Math.max(2000, intervalMs)) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        samples.push(parseMetrics(await res.text()));
      } catch {
        failures++;
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { samples, failures };
    },
  };
}
