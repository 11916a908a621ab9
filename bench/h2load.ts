/**
 * h2load (Debian package nghttp2-client): installs it when missing, runs one timed load and reads its
 * results. Requests/s come from h2load's summary; p50/p99 from its per-request log (`--log-file`, which
 * holds only the requests of the measured period, not the warm-up).
 */
import { execFile, spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Makes sure `h2load` is on the PATH, installing nghttp2-client with apt-get if it is not. */
export async function ensureH2load(log: (line: string) => void): Promise<string> {
  try {
    return (await run("h2load", ["--version"])).stdout.trim();
  } catch {
    log("h2load not found: installing nghttp2-client with apt-get");
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const [cmd, ...pre] = process.getuid?.() === 0 ? ["apt-get"] : ["sudo", "apt-get"];
  try {
    await run(cmd, [...pre, "update"], { env });
    await run(cmd, [...pre, "install", "-y", "nghttp2-client"], { env });
  } catch (err) {
    throw new Error(
      `could not install h2load (apt-get install nghttp2-client): ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return (await run("h2load", ["--version"])).stdout.trim();
}

/** One timed load. */
export interface LoadOptions {
  url: string;
  http1: boolean;
  headers: Readonly<Record<string, string>>;
  bodyFile: string;
  connections: number;
  streams: number;
  warmupSeconds: number;
  durationSeconds: number;
  logFile: string;
  /** Called as the measured period starts and as it ends (h2load prints both as they happen). */
  onPeriod?: (edge: "start" | "end") => void;
}

/** What one load measured. */
export interface LoadResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

function field(output: string, pattern: RegExp, what: string): RegExpExecArray {
  const m = pattern.exec(output);
  if (!m) throw new Error(`h2load output has no ${what}:\n${output}`);
  return m;
}

/** The value at quantile `q` (nearest rank) of sorted values. */
function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Runs h2load; throws when any request failed, errored, timed out or got a non-2xx status. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const args = [
    ...(opts.http1 ? ["--h1"] : []),
    `--clients=${opts.connections}`,
    `--max-concurrent-streams=${opts.streams}`,
    `--warm-up-time=${opts.warmupSeconds}`,
    `--duration=${opts.durationSeconds}`,
    `--data=${opts.bodyFile}`,
    `--log-file=${opts.logFile}`,
    ...Object.entries(opts.headers).map(([k, v]) => `--header=${k}: ${v}`),
    opts.url,
  ];
  // h2load appends to its log file: a log left by an earlier load would mix that load's latencies in.
  await rm(opts.logFile, { force: true });
  const output = await new Promise<string>((done, fail) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    const read = (c: Buffer) => {
      text += c;
      if (/Warm-up phase is over/.test(String(c))) opts.onPeriod?.("start");
      if (/Main benchmark duration is over/.test(String(c))) opts.onPeriod?.("end");
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("error", fail);
    child.on("close", (code) => (code === 0 ? done(text) : fail(new Error(`h2load exited with ${code}:\n${text}`))));
  });
  const rps = Number(field(output, /finished in [\d.]+\w+, ([\d.]+) req\/s/, "req/s")[1]);
  const [, , , , succeeded, failed, errored, timeout] = field(
    output,
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
    "request counts",
  ).map(Number);
  const [, , s3, s4, s5] = field(
    output,
    /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/,
    "status codes",
  ).map(Number);
  if (failed + errored + timeout + s3 + s4 + s5 > 0 || succeeded === 0) {
    const summary = output.slice(Math.max(0, output.indexOf("finished in")));
    throw new Error(
      `h2load saw failures (${failed} failed, ${errored} errored, ${timeout} timeout, ${s3 + s4 + s5} non-2xx):\n${summary}`,
    );
  }
  // Each line: start time (µs since the epoch), HTTP status, microseconds until the end of the response.
  // h2load also logs the requests it sent during the warm-up that finish in the measured period, with
  // status 0 (it records a status only in the measured period): every such line starts before the first
  // measured request. They are not part of the measured period; at the phase change they are the slowest
  // few hundred requests of a load, enough to move its p99 (158 -> 189 ms in one run of the service).
  const lines = (await readFile(opts.logFile, "utf8"))
    .split("\n")
    .map((l) => l.split("\t"))
    .filter((f) => f.length === 3 && f[1] !== "0");
  const latencies = Float64Array.from(lines, (f) => Number(f[2]) / 1000).sort();
  return { requests: succeeded, rps, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99) };
}
