/**
 * Call footprint: how many source files under src/ one RPC executes code in.
 *
 * Usage: `node scripts/node24.mjs scripts/call-footprint.ts [--root <dir>]` (root: the checkout whose src/
 * is measured, by default the one this script lives in; e.g. a git worktree of an older commit).
 *
 * Method. The service (`<root>/src/app/start-app.ts`, `src/app.ts` before ADR 0014) is started in this process on port 0, with an embedded
 * PostgreSQL in a temporary DATA_DIR and logging off, and the bootstrap admin logs in. V8's precise coverage
 * (node:inspector, `Profiler.startPreciseCoverage({ callCount: true, detailed: true })`) counts every function
 * execution. Each measured call is first made WARMUP times (lazy imports, caches and pooled connections are
 * then what they are in steady state); then, RUNS times: `takePreciseCoverage()` (which resets the
 * counters), exactly one call, SETTLE_MS for what the call set off asynchronously (the change feed's read
 * after a write, a cancelled stream's clean-up), `takePreciseCoverage()` again. A file counts when at least
 * one of its functions ran (count > 0); a module's top-level code (the range over the whole file, with an
 * empty function name) does not count. Background timers of the service (change-feed poll, revoked-session
 * poll, health probe) can fire inside a window, so the reported set is the files touched in every run; files
 * touched in only some runs are listed apart. Client code and node_modules are not counted, nor worker
 * threads (the password-hash pool), which none of the measured calls uses.
 *
 * Calls: GetUser (the admin's own user) over gRPC (HTTP/2) and over Connect JSON on HTTP/1.1; WatchUsers
 * over gRPC with send_initial and a filter matching the admin only: open, receive INITIAL and SYNCED, cancel;
 * the same stream with one UpdateUser (of the admin's display name, by another gRPC client) in it, up to the
 * UPDATED event and cancel; and that UpdateUser alone, so the reader can tell which files the update brings.
 */
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AuthService } from "../gen/auth/v1/auth_service_pb.js";
import { UserService, WatchEventType } from "../gen/user/v1/user_service_pb.js";

const WARMUP = 5;
const RUNS = 5;
const SETTLE_MS = 50;
const ADMIN = { email: "admin@example.com", password: "footprint-admin-password" };

const rootArg = process.argv.indexOf("--root");
const root = realpathSync(
  rootArg > 0 ? process.argv[rootArg + 1] : join(dirname(fileURLToPath(import.meta.url)), ".."),
);
const srcDir = join(root, "src");
const srcUrl = `${pathToFileURL(srcDir).href}/`;

// Computed paths: the type-checker sees this checkout's modules, the run loads the root's.
const load = (path: string) => import(pathToFileURL(join(root, path)).href);
// The composition root moved to src/app/start-app.ts in the layering step (ADR 0014); older checkouts have src/app.ts.
const appModule = existsSync(join(root, "src/app/start-app.ts")) ? "src/app/start-app.ts" : "src/app.ts";
const { startApp } = (await load(appModule)) as typeof import("../src/app/start-app.ts");
const { loadConfig } = (await load("src/config.ts")) as typeof import("../src/config.ts");
const { createLogger } = (await load("src/logger.ts")) as typeof import("../src/logger.ts");

const dataDir = mkdtempSync(join(tmpdir(), "call-footprint-"));
const config = loadConfig({
  PORT: "0",
  HOST: "127.0.0.1",
  DATA_DIR: dataDir,
  JWT_SECRET: "call-footprint-secret-call-footprint-secret-0123",
  ADMIN_EMAIL: ADMIN.email,
  ADMIN_PASSWORD: ADMIN.password,
  LOG_LEVEL: "silent",
  SHUTDOWN_GRACE: "2s",
  PRUNE_INTERVAL: "1h",
  RATE_LIMIT_PER_SECOND: "100000",
  RATE_LIMIT_BURST: "100000",
  RATE_LIMIT_LOGIN_PER_MINUTE: "100000",
});
const app = await startApp(config, { log: createLogger(config.logLevel) });

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const bearer =
  (token: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };

const login = await createClient(AuthService, createGrpcTransport({ baseUrl: app.url })).login(ADMIN);
const token = login.tokens?.accessToken ?? "";
const adminId = login.user?.id ?? "";
const interceptors = [bearer(token)];
const grpc = createClient(UserService, createGrpcTransport({ baseUrl: app.url, interceptors }));
// A second client (its own HTTP/2 connection) makes the updates a watcher sees.
const updater = createClient(UserService, createGrpcTransport({ baseUrl: app.url, interceptors }));
const connectJson = createClient(
  UserService,
  createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors }),
);

let renames = 0;
const updateUser = () =>
  updater.updateUser({
    user: { id: adminId, displayName: `Footprint ${++renames}` },
    updateMask: { paths: ["display_name"] },
  });

/** Opens WatchUsers on the admin, waits for INITIAL and SYNCED (then, with `update`, for its UPDATED), cancels. */
async function watchUsers(update: boolean): Promise<void> {
  const abort = new AbortController();
  const stream = grpc.watchUsers({ sendInitial: true, filter: `email = "${ADMIN.email}"` }, { signal: abort.signal });
  const expected = [WatchEventType.INITIAL, WatchEventType.SYNCED, ...(update ? [WatchEventType.UPDATED] : [])];
  try {
    for await (const event of stream) {
      if (event.type === WatchEventType.HEARTBEAT) continue;
      if (event.type !== expected.shift()) throw new Error(`unexpected WatchUsers event ${event.type}`);
      if (expected.length === 0) break;
      if (update && event.type === WatchEventType.SYNCED) await updateUser();
    }
  } finally {
    abort.abort();
  }
}

const calls: [name: string, call: () => Promise<unknown>][] = [
  ["GetUser, gRPC (HTTP/2)", () => grpc.getUser({ userId: adminId })],
  ["GetUser, Connect JSON (HTTP/1.1)", () => connectJson.getUser({ userId: adminId })],
  ["WatchUsers, gRPC: open, INITIAL, SYNCED, cancel", () => watchUsers(false)],
  ["WatchUsers, gRPC: same + one UpdateUser → UPDATED", () => watchUsers(true)],
  ["UpdateUser alone, gRPC", updateUser],
];

const session = new Session();
session.connect();
await session.post("Profiler.enable");
await session.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });

/** The src/ files (relative to root) with a function that ran since the last coverage snapshot. */
async function touchedFiles(): Promise<Set<string>> {
  const { result } = await session.post("Profiler.takePreciseCoverage");
  const files = new Set<string>();
  for (const script of result) {
    if (!script.url.startsWith(srcUrl)) continue;
    const ran = script.functions.some(
      (f) => f.ranges[0].count > 0 && !(f.functionName === "" && f.ranges[0].startOffset === 0),
    );
    if (ran) files.add(relative(root, fileURLToPath(script.url)));
  }
  return files;
}

const rows: { name: string; always: string[]; sometimes: string[] }[] = [];
for (const [name, call] of calls) {
  for (let i = 0; i < WARMUP; i++) await call();
  await sleep(SETTLE_MS);
  const runs: Set<string>[] = [];
  for (let i = 0; i < RUNS; i++) {
    await touchedFiles(); // resets the counters
    await call();
    await sleep(SETTLE_MS);
    runs.push(await touchedFiles());
  }
  const all = [...new Set(runs.flatMap((r) => [...r]))].sort();
  rows.push({
    name,
    always: all.filter((f) => runs.every((r) => r.has(f))),
    sometimes: all.filter((f) => !runs.every((r) => r.has(f))),
  });
}
await session.post("Profiler.stopPreciseCoverage");
session.disconnect();

const tsFiles = (readdirSync(srcDir, { recursive: true }) as string[]).filter(
  (f) => f.endsWith(".ts") && !f.startsWith(join("db", "migrations")),
);
console.log(`root: ${root}`);
console.log(`.ts files under src/ (without src/db/migrations): ${tsFiles.length}`);
console.log(`window: one call + ${SETTLE_MS} ms, ${RUNS} runs after ${WARMUP} warm-up calls\n`);
const width = Math.max(...rows.map((r) => r.name.length));
console.log(`${"call".padEnd(width)}  src files`);
for (const r of rows) console.log(`${r.name.padEnd(width)}  ${r.always.length}`);
for (const r of rows) {
  console.log(`\n${r.name}: ${r.always.length} files`);
  for (const f of r.always) console.log(`  ${f}`);
  if (r.sometimes.length > 0) console.log(`  (in some runs only: ${r.sometimes.join(", ")})`);
}

await app.close();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
