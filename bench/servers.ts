/**
 * The servers under test as child processes: the service (the server bundle, `node dist/server/main.js`, exactly as deployed) and the
 * baseline (bench/baseline-server.ts). A fresh process per load, so its peak RSS (VmHWM) is that load's.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { ensureServerBuilt, SERVER_ENTRY } from "../scripts/ensure-built.ts";
import { freePort } from "../src/db/embedded-postgres.ts";

/** The repository root (the service's working directory). */
export const repoRoot = fileURLToPath(new URL("..", import.meta.url));

/** The commit a report was made at (`-dirty` when the tree has changes). */
export function gitCommit(): string {
  try {
    return execFileSync("git", ["describe", "--always", "--dirty"], { cwd: repoRoot, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (100 on every Linux architecture Node supports). */
const USER_HZ = 100;

/** Which server. */
export type ServerKind = "service" | "baseline";

/** What both servers are configured with. */
export interface ServerEnv {
  DATABASE_URL: string;
  JWT_SECRET: string;
  JWT_ISSUER: string;
  JWT_AUDIENCE: string;
  DB_POOL_MAX: string;
}

/** A running server process. */
export interface ServerProcess {
  readonly origin: string;
  readonly pid: number;
  /** Peak resident set size so far (VmHWM), in bytes. */
  peakRss(): number;
  /** The last few KB the process wrote to stdout and stderr. */
  output(): string;
  /** CPU time used so far (user + system, all threads), in seconds. */
  cpuSeconds(): number;
  /** SIGTERM, then SIGKILL after 15 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

function waitForPort(port: number, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((done, fail) => {
    const attempt = () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        return fail(new Error(`server exited (${child.exitCode ?? child.signalCode}) before listening:\n${output()}`));
      }
      if (Date.now() > deadline)
        return fail(new Error(`server did not listen on ${port} within ${timeoutMs} ms:\n${output()}`));
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        done();
      });
      socket.once("error", () => setTimeout(attempt, 100));
    };
    attempt();
  });
}

/**
 * The Node/V8 flags `npm start` gives the service (package.json; the Dockerfile's CMD is checked against it
 * by test/deploy/manifests.test.ts), so the benchmark runs it as deployed (docs/adr/0005).
 */
function deployedFlags(): string[] {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    scripts: { start: string };
  };
  return pkg.scripts.start.split(" ").filter((a) => a.startsWith("--"));
}

/** Starts a server on a free port and waits until it accepts connections. `nodeArgs` go before the script. */
export async function startServer(
  kind: ServerKind,
  env: ServerEnv,
  nodeArgs: readonly string[] = [],
): Promise<ServerProcess> {
  const port = await freePort();
  // The service runs from its bundle, as npm start and the image run it (built here when a source changed).
  if (kind === "service") await ensureServerBuilt();
  const script = kind === "service" ? SERVER_ENTRY : "bench/baseline-server.ts";
  // BENCH_SERVICE_FLAGS replaces the service's V8/Node flags (to try others; the default is how it is deployed).
  const serviceFlags = process.env.BENCH_SERVICE_FLAGS?.split(" ").filter((f) => f !== "") ?? deployedFlags();
  const flags = kind === "service" ? [...serviceFlags, ...nodeArgs] : nodeArgs;
  const child = spawn(process.execPath, [...flags, script], {
    cwd: repoRoot,
    env: { ...process.env, ...env, HOST: "127.0.0.1", PORT: String(port), LOG_LEVEL: "warn", SHUTDOWN_GRACE: "1s" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  // BENCH_SERVER_LOG: a file that gets everything the servers write (e.g. with --trace-gc in the flags).
  const logFile = process.env.BENCH_SERVER_LOG;
  const keep = (c: Buffer) => {
    if (logFile) appendFileSync(logFile, c);
    output = (output + c).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  try {
    await waitForPort(port, child, () => output, 60_000);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  const pid = child.pid as number;
  return {
    origin: `http://127.0.0.1:${port}`,
    pid,
    peakRss() {
      const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
      return Number(kb) * 1024;
    },
    output: () => output,
    cpuSeconds() {
      // Fields 14 and 15 of /proc/<pid>/stat, counted after the ")" that ends the command name, in USER_HZ.
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
