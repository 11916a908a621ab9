/**
 * Builds the web console when web/dist is missing or older than its sources, so `npm start` and `npm test`
 * (which run this first, as prestart/pretest) work on a fresh clone without a separate build step, and
 * never serve or test a stale build. Run as `node src/web/ensure-built.ts` (`--force` to build anyway,
 * which is `npm run build:web`). The console is type-checked first (Vite only strips types). Without Vite
 * installed (a production install without dev dependencies) it only warns: the service starts and `/`
 * explains.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WEB_DIST } from "./static-route.ts";

const repo = resolve(import.meta.dirname, "../..");
const sources = ["web/index.html", "web/vite.config.ts", "web/src", "gen", "package-lock.json"].map((p) =>
  join(repo, p),
);
const lockDir = join(repo, "web", ".build-lock");

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

/** True when web/dist holds a build at least as new as every source it is made from. */
function webBuildIsCurrent(): boolean {
  const index = join(WEB_DIST, "index.html");
  return existsSync(index) && statSync(index).mtimeMs >= Math.max(...sources.map(newestMtime));
}

/** Waits for a build in another process (parallel test files) instead of racing it; stale locks expire. */
async function withLock<T>(work: () => T): Promise<T> {
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
    return work();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function run(tool: string, args: string[]): void {
  const done = spawnSync(process.execPath, [join(repo, "node_modules", tool), ...args], {
    cwd: repo,
    stdio: "inherit",
  });
  if (done.status !== 0)
    throw new Error(`building the web console failed (${args[0]}: exit ${done.status ?? done.signal})`);
}

/** Builds when needed (always with `force`): "current", "built", or "no-vite" when Vite is not installed. */
export async function ensureWebBuilt(opts: { force?: boolean } = {}): Promise<"current" | "built" | "no-vite"> {
  if (!opts.force && webBuildIsCurrent()) return "current";
  if (!existsSync(join(repo, "node_modules", "vite", "bin", "vite.js"))) return "no-vite";
  return withLock(() => {
    if (!opts.force && webBuildIsCurrent()) return "current";
    run("typescript/bin/tsc", ["-p", "web"]);
    run("vite/bin/vite.js", ["build", "web", "--logLevel", "warn"]);
    return "built";
  });
}

// Not import.meta.main: that needs Node 24.2, and package.json allows 22.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const result = await ensureWebBuilt({ force: process.argv.includes("--force") });
    if (result === "built") process.stdout.write("web console built into web/dist\n");
    if (result === "no-vite")
      process.stderr.write("web console not built: Vite is not installed (npm ci installs it); `/` will say so\n");
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
