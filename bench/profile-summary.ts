/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. from `BENCH_CPU_PROF=dir npm run bench`): self time
 * by package (node_modules package, Node internals, the service's own files, GC, idle) and the functions
 * with the most self time.
 *
 * Usage: `node bench/profile-summary.ts <file.cpuprofile> [--top 30] [--skip SECONDS]`; `--skip` leaves out the
 * first seconds of the profile (start-up and warm-up).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** The parts of a .cpuprofile this reads. */
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package name, a Node module, a repo path's top folder, or a V8 pseudo-frame. */
function packageOf(frame: ProfileNode["callFrame"]): string {
  if (!frame.url) return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url);
  if (pkg) return pkg[1];
  // node:internal/http2/core -> node:http2, node:events -> node:events
  if (frame.url.startsWith("node:")) return `node:${frame.url.replace(/^node:(internal\/)?/, "").split("/")[0]}`;
  const own = /\/(src|gen|bench)\/(.*)$/.exec(frame.url);
  return own ? `${own[1]}/${own[2].split("/")[0]}` : frame.url;
}

/** Self time (µs) per key, given a key for each profile node, counting samples from `skipUs` on. */
function selfTime(profile: Profile, keyOf: (node: ProfileNode) => string, skipUs: number): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, keyOf(n)]));
  const out = new Map<string, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < skipUs) return;
    const key = byId.get(id) ?? "?";
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return out;
}

function table(title: string, times: Map<string, number>, total: number, top: number): string {
  const rows = [...times].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `${title}`,
    ...rows.map(
      ([k, us]) => `${((us / total) * 100).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: "string", default: "30" }, skip: { type: "string", default: "0" } },
  });
  if (positionals.length !== 1) {
    process.stderr.write("usage: node bench/profile-summary.ts <file.cpuprofile> [--top N] [--skip SECONDS]\n");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(positionals[0], "utf8")) as Profile;
  const skipUs = Number(values.skip) * 1e6;
  const byFrame = selfTime(profile, (n) => n.callFrame.functionName, skipUs);
  const total = [...byFrame.values()].reduce((a, b) => a + b, 0);
  const busy = total - (byFrame.get("(idle)") ?? 0);
  const fn = (n: ProfileNode) => {
    const f = n.callFrame;
    const where = f.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(src|gen|bench)\//, "$1/");
    return `${f.functionName || "(anonymous)"}  ${where}${f.url ? `:${f.lineNumber + 1}` : ""}`;
  };
  process.stdout.write(
    `${(total / 1e6).toFixed(1)} s profiled (first ${values.skip} s skipped), ${((busy / total) * 100).toFixed(0)} % busy (not idle)\n\n` +
      `${table(
        "self time by package (% of samples)",
        selfTime(profile, (n) => packageOf(n.callFrame), skipUs),
        total,
        25,
      )}\n\n` +
      `${table("self time by function", selfTime(profile, fn, skipUs), total, Number(values.top))}\n`,
  );
}
