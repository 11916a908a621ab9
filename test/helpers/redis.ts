/**
 * A real redis-server (the Debian package; .ci/run installs it) on a free port, in memory only, for the
 * tests of limits shared across replicas. Missing redis-server is a failure with the way to fix it, never
 * a skipped test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";

/** A running redis-server. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Stops it (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

/** Starts redis-server on `port` (default: a free one); resolves once it accepts connections. */
export async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const child = spawn(
    "redis-server",
    ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "notice"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  // Never outlive the test process, whatever happens to it.
  const orphanGuard = () => child.kill("SIGKILL");
  process.once("exit", orphanGuard);
  void exited.then(() => process.off("exit", orphanGuard));
  await new Promise<void>((done, fail) => {
    let out = "";
    child.once("error", (err: NodeJS.ErrnoException) =>
      fail(
        err.code === "ENOENT"
          ? new Error(
              "redis-server is not installed: apt-get install -y redis-server (Debian package; .ci/run does it)",
            )
          : err,
      ),
    );
    const onData = (chunk: Buffer) => {
      out += chunk;
      if (out.includes("Ready to accept connections")) done();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) =>
      fail(new Error(`redis-server exited (${code}) before it was ready: ${out.slice(-500)}`)),
    );
  });
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT"); // a paused server (SIGSTOP) handles SIGTERM only once resumed
        child.kill("SIGTERM");
      }
      await exited;
    },
  };
}
