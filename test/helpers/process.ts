/**
 * The service as a real child process (the server bundle, dist/server/main.js, as `npm start` runs it), for tests that need separate processes:
 * shutdown signals, and replicas that share nothing but the database.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { SERVER_ENTRY } from "../../scripts/ensure-built.ts";
import { ADMIN, JWT_SECRET } from "./server.ts";

/** A service process that is listening. */
export interface ServiceProcess {
  child: ChildProcess;
  url: string;
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
  /** Everything it has written to stdout and stderr so far. */
  output(): string;
}

const children: ChildProcess[] = [];

/** Kills every process started so far that is still running (for afterEach/afterAll). */
export function killProcesses(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

/** Starts the service as a child process; resolves once it listens. */
export function startProcess(env: Record<string, string>, opts: { cwd?: string } = {}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [SERVER_ENTRY], {
    cwd: opts.cwd,
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      JWT_SECRET,
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return new Promise((done, fail) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk;
      const m = /"url":"(http:\/\/[^"]+)".*"msg":"listening"/.exec(out);
      if (m) done({ child, url: m[1], exited, output: () => out });
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    child.once("exit", (code) => fail(new Error(`exited ${code} before listening: ${out.slice(-500)}`)));
  });
}
