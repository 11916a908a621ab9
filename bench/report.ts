/**
 * Turns the per-round measurements of a GetUser scenario into the markdown report: medians per target,
 * ratios to the baseline's gRPC numbers, the scenario's goals checked against them, and every round's raw
 * numbers.
 */
import type { ProtocolName } from "./protocols.ts";
import type { ServerKind } from "./servers.ts";

/** A server and the protocol it is loaded over. */
export interface Target {
  readonly name: string;
  readonly server: ServerKind;
  readonly protocol: ProtocolName;
  /** How the load authenticates: an access token (JWT, the default) or an API key (`usk_...`). */
  readonly credential?: "jwt" | "api-key";
}

/** One load of one target in one round. */
export interface Sample {
  target: Target;
  round: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU time during the measured period, in % of one core. */
  cpuPercent: number;
  /** Server CPU time per request, in microseconds. */
  cpuPerRequestUs: number;
  peakRssMb: number;
  verifiedCalls: number;
}

/** How the run was made, printed above the tables. */
export interface RunInfo {
  date: string;
  commit: string;
  node: string;
  h2load: string;
  cpus: number;
  /** 1-minute load average before the run started: above ~0.5, something else was using the machine. */
  loadAverage: number;
  users: number;
  rounds: number;
  warmupSeconds: number;
  durationSeconds: number;
  connections: number;
  streams: number;
}

/** What a GetUser scenario must reach, against the baseline over gRPC in the same run. */
export interface Goals {
  /** Where the goals come from, e.g. "issue 14". */
  issue: string;
  /** Service gRPC req/s at least this many times the baseline's. */
  grpcRatio: number;
  /** The ratio below which the scenario counts as failed outright (the floor checked), when it differs. */
  grpcFloor?: number;
  /** Other service protocols' req/s at least this many times the baseline's gRPC. */
  otherRatio?: number;
  /** Service gRPC p99 at most the baseline's. */
  p99NotAboveBaseline?: boolean;
  /** Peak RSS of the service, MB. */
  maxRssMb: number;
}

type Summary = Omit<Sample, "round" | "verifiedCalls">;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (a: number, b: number | undefined) => (b ? `${fmt(a / b, 2)}x` : "n/a");

function goalLines(rows: Summary[], base: Summary | undefined, g: Goals): string[] {
  if (!base) return ["- no baseline gRPC measurement in this run: goals not checked"];
  if (!rows.some((r) => r.target.server === "service"))
    return ["- no service measurement in this run: goals not checked"];
  const mark = (ok: boolean) => (ok ? "met" : "**not met**");
  const out: string[] = [];
  for (const r of rows) {
    if (r.target.server !== "service" || r.target.credential === "api-key") continue;
    if (r.target.protocol === "grpc") {
      const floor =
        g.grpcFloor === undefined ? "" : ` (floor ${fmt(g.grpcFloor, 1)}x: ${mark(r.rps >= g.grpcFloor * base.rps)})`;
      out.push(
        `- service gRPC >= ${fmt(g.grpcRatio, 1)}x baseline req/s: ${ratio(r.rps, base.rps)}, ${mark(r.rps >= g.grpcRatio * base.rps)}${floor}`,
      );
      if (g.p99NotAboveBaseline)
        out.push(
          `- service gRPC p99 <= baseline p99: ${fmt(r.p99Ms, 1)} vs ${fmt(base.p99Ms, 1)} ms, ${mark(r.p99Ms <= base.p99Ms)}`,
        );
    } else if (g.otherRatio !== undefined) {
      out.push(
        `- service ${r.target.protocol} >= ${fmt(g.otherRatio, 1)}x baseline gRPC req/s: ${ratio(r.rps, base.rps)}, ${mark(r.rps >= g.otherRatio * base.rps)}`,
      );
    }
    out.push(
      `- service ${r.target.protocol} peak RSS <= ${g.maxRssMb} MB: ${fmt(r.peakRssMb)} MB, ${mark(r.peakRssMb <= g.maxRssMb)}`,
    );
  }
  return out;
}

/** API-key targets against the same server and protocol with a JWT, in the same run (docs/adr/0019). */
function apiKeyLines(rows: Summary[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.target.credential !== "api-key") continue;
    const jwt = rows.find(
      (j) =>
        j.target.server === r.target.server &&
        j.target.protocol === r.target.protocol &&
        j.target.credential !== "api-key",
    );
    if (!jwt) {
      out.push(`- ${r.target.name}: no JWT measurement of the same target in this run, no ratio`);
      continue;
    }
    out.push(
      `- ${r.target.name} vs ${jwt.target.name} (JWT): req/s ${ratio(r.rps, jwt.rps)}, CPU µs/req ` +
        `${ratio(r.cpuPerRequestUs, jwt.cpuPerRequestUs)}, p99 ${ratio(r.p99Ms, jwt.p99Ms)}`,
    );
  }
  return out.length > 0 ? ["API key against JWT:", "", ...out, ""] : [];
}

/** The report. */
export function renderReport(
  title: string,
  info: RunInfo,
  targets: readonly Target[],
  samples: readonly Sample[],
  goals: Goals,
): string {
  const rows: Summary[] = targets
    .map((target) => samples.filter((s) => s.target === target))
    .filter((ss) => ss.length > 0)
    .map((ss) => ({
      target: ss[0].target,
      rps: median(ss.map((s) => s.rps)),
      p50Ms: median(ss.map((s) => s.p50Ms)),
      p99Ms: median(ss.map((s) => s.p99Ms)),
      cpuPercent: median(ss.map((s) => s.cpuPercent)),
      cpuPerRequestUs: median(ss.map((s) => s.cpuPerRequestUs)),
      peakRssMb: median(ss.map((s) => s.peakRssMb)),
    }));
  const base = rows.find((r) => r.target.server === "baseline" && r.target.protocol === "grpc");
  return [
    `# ${title}`,
    "",
    `${info.date}, commit ${info.commit}, Node ${info.node}, ${info.h2load}, ${info.cpus} CPUs (load average ${fmt(info.loadAverage, 2)} before the run).`,
    `${fmt(info.users)} users, random ids;`,
    `${info.connections} connections x ${info.streams} streams (HTTP/1.1: ${info.connections} connections, one request in flight each);`,
    `${info.warmupSeconds} s warm-up + ${info.durationSeconds} s measured per load, ${info.rounds} round(s); medians over rounds.`,
    "Ratios are against the baseline over gRPC. Server CPU is the server process's (all threads) during the measured",
    "period, in % of one core and per request. Peak RSS is its VmHWM (a fresh process per load), MB = 2^20 bytes.",
    "",
    "| target | req/s | p50 ms | p99 ms | server CPU % | CPU µs/req | peak RSS MB | req/s vs baseline | p99 vs baseline |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ...rows.map(
      (r) =>
        `| ${r.target.name} | ${fmt(r.rps)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.cpuPercent)} | ${fmt(r.cpuPerRequestUs)} | ` +
        `${fmt(r.peakRssMb)} | ${ratio(r.rps, base?.rps)} | ${ratio(r.p99Ms, base?.p99Ms)} |`,
    ),
    "",
    `Goals (${goals.issue}):`,
    "",
    ...goalLines(rows, base, goals),
    "",
    ...apiKeyLines(rows),
    "Every round:",
    "",
    "| round | target | req/s | p50 ms | p99 ms | server CPU % | CPU µs/req | peak RSS MB | verified calls |",
    "|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ...samples.map(
      (s) =>
        `| ${s.round} | ${s.target.name} | ${fmt(s.rps)} | ${fmt(s.p50Ms, 1)} | ${fmt(s.p99Ms, 1)} | ${fmt(s.cpuPercent)} | ` +
        `${fmt(s.cpuPerRequestUs)} | ${fmt(s.peakRssMb)} | ${s.verifiedCalls} |`,
    ),
    "",
  ].join("\n");
}
