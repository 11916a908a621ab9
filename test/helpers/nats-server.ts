/**
 * A real nats-server with JetStream (the Debian package; .ci/run installs it) on a free port, storing into a
 * directory of its own, for the NATS publisher's tests and the outbound bench. It can be stopped and started
 * again on the same port and store, as a NATS outage looks to the service. A missing nats-server is a failure
 * with the way to fix it, never a skipped test. No test-runner imports: the bench uses it too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A nats-server, running or stopped; its port and store stay the same across restarts. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** Stops it (SIGTERM, then waits for the exit): JetStream state is on disk. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and deletes its store. */
  dispose(): Promise<void>;
}

/** The Debian package installs it in /usr/sbin, which a non-root PATH often lacks. */
const NATS_SERVER = existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

function spawnServer(port: number, storeDir: string): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn(NATS_SERVER, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  // Never outlive the test process, whatever happens to it.
  const orphanGuard = () => child.kill("SIGKILL");
  process.once("exit", orphanGuard);
  void exited.then(() => process.off("exit", orphanGuard));
  return new Promise((done, fail) => {
    let out = "";
    child.once("error", (err: NodeJS.ErrnoException) =>
      fail(
        err.code === "ENOENT"
          ? new Error("nats-server is not installed: apt-get install -y nats-server (Debian package; .ci/run does it)")
          : err,
      ),
    );
    const onData = (chunk: Buffer) => {
      out += chunk;
      if (out.includes("Server is ready")) done({ child, exited });
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) =>
      fail(new Error(`nats-server exited (${code}) before it was ready: ${out.slice(-500)}`)),
    );
  });
}

/** Starts nats-server -js on a free port with a fresh store directory. */
export async function startNats(): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "nats-js-"));
  let running: { child: ChildProcess; exited: Promise<void> } | undefined = await spawnServer(port, storeDir);
  const stop = async () => {
    const r = running;
    running = undefined;
    if (!r) return;
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGTERM");
    await r.exited;
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    async start() {
      if (!running) running = await spawnServer(port, storeDir);
    },
    async dispose() {
      await stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}
