/**
 * What the fan-out scenario's processes share: the messages they exchange over IPC, a latency histogram
 * that travels as sparse pairs, and bitmaps of write numbers (which writes a watcher saw, which committed).
 */

/** The epoch clock with sub-millisecond resolution (all processes of the run are on one machine). */
export const epochNow = (): number => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------------------
// Latency histogram: 0.1 ms buckets below 1 s, 1 ms buckets from 1 s to 120 s, then one overflow bucket.

const FINE = 10_000;
const COARSE = 119_000;
const BUCKETS = FINE + COARSE + 1;

function bucketOf(ms: number): number {
  if (ms < 1000) return Math.max(0, Math.floor(ms * 10));
  return Math.min(BUCKETS - 1, FINE + Math.floor(ms - 1000));
}

/** The upper edge of a bucket in ms (what a percentile reports: never below the true value). */
function bucketTop(b: number): number {
  if (b < FINE) return (b + 1) / 10;
  if (b < BUCKETS - 1) return 1000 + (b - FINE + 1);
  return Number.POSITIVE_INFINITY;
}

/** A histogram as it crosses IPC. */
export interface SparseHistogram {
  /** [bucket, count] pairs. */
  pairs: [number, number][];
  count: number;
  /** Exact largest value recorded, ms. */
  max: number;
  /** Values below zero, recorded as 0 (clock disagreement: should stay 0 on one machine). */
  negative: number;
}

export class Histogram {
  readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  max = 0;
  negative = 0;

  record(ms: number): void {
    if (ms < 0) this.negative++;
    this.counts[bucketOf(ms)]++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  sparse(): SparseHistogram {
    const pairs: [number, number][] = [];
    for (let b = 0; b < BUCKETS; b++) if (this.counts[b] > 0) pairs.push([b, this.counts[b]]);
    return { pairs, count: this.count, max: this.max, negative: this.negative };
  }
}

/** Several histograms as one: count, max, and percentiles (the bucket's upper edge, 0.1 ms or 1 ms). */
export interface LatencySummary {
  count: number;
  max: number;
  negative: number;
  p(q: number): number;
}

export function mergeHistograms(parts: readonly SparseHistogram[]): LatencySummary {
  const counts = new Map<number, number>();
  let count = 0;
  let max = 0;
  let negative = 0;
  for (const part of parts) {
    for (const [b, c] of part.pairs) counts.set(b, (counts.get(b) ?? 0) + c);
    count += part.count;
    max = Math.max(max, part.max);
    negative += part.negative;
  }
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  return {
    count,
    max: count > 0 ? max : Number.NaN,
    negative,
    p(q) {
      if (count === 0) return Number.NaN;
      const rank = Math.max(1, Math.ceil((q / 100) * count));
      let seen = 0;
      for (const [b, c] of buckets) {
        seen += c;
        if (seen >= rank) return Math.min(bucketTop(b), max);
      }
      return max;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Bitmaps of write numbers.

export const newBits = (n: number): Uint8Array => new Uint8Array(Math.ceil(n / 8));
export const hasBit = (bits: Uint8Array, i: number): boolean => (bits[i >> 3] & (1 << (i & 7))) !== 0;
export function setBit(bits: Uint8Array, i: number): void {
  bits[i >> 3] |= 1 << (i & 7);
}
export const bitsToBase64 = (bits: Uint8Array): string => Buffer.from(bits).toString("base64");
export const bitsFromBase64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => {
  let n = 0;
  for (let x = b; x; x >>= 1) n += x & 1;
  return n;
});

export function countBits(bits: Uint8Array): number {
  let n = 0;
  for (const b of bits) n += POPCOUNT[b];
  return n;
}

/** |a \ b|, and the first element of a \ b (or -1). */
export function difference(a: Uint8Array, b: Uint8Array): { count: number; first: number } {
  let count = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] & ~(b[i] ?? 0);
    if (d === 0) continue;
    if (first < 0) first = i * 8 + Math.log2(d & -d);
    count += POPCOUNT[d];
  }
  return { count, first };
}

// ---------------------------------------------------------------------------------------------------------
// IPC: parent <-> watcher processes.

/** One watcher: `filter` is the WatchUsers filter ("" = every change). */
export interface WatcherSpec {
  id: number;
  filter: string;
}

export interface WatchersStart {
  type: "start";
  baseUrl: string;
  token: string;
  /** The label value that marks this phase's measured writes (`bench_run`). */
  runId: string;
  /** Measured writes are numbered 0..writes-1 (`bench_n`). */
  writes: number;
  streamsPerConnection: number;
  watchers: WatcherSpec[];
}

export interface WatchersProgress {
  type: "progress";
  /** Watchers that have received at least one UPDATED event (warm-up included). */
  ready: number;
  /** Distinct measured events received, summed over watchers. */
  received: number;
  /** Watchers that ended with an error they could not resume from. */
  failed: number;
  resumes: number;
}

/** What one watcher saw of the measured writes. */
export interface WatcherOutcome {
  id: number;
  /** Measured events received, duplicates included. */
  received: number;
  duplicates: number;
  /** Measured events with a `bench_n` outside 0..writes-1, or unreadable. */
  malformed: number;
  /** Base64 bitmap of the write numbers received. */
  seen: string;
}

export interface WatchersResult {
  type: "result";
  watchers: WatcherOutcome[];
  /** Commit (event_time) -> decoded, for watchers without a filter. */
  commitAll: SparseHistogram;
  /** Commit (event_time) -> decoded, for watchers with a filter. */
  commitFiltered: SparseHistogram;
  /** Writer's send time (`bench_sent`) -> decoded, every watcher. */
  fromSent: SparseHistogram;
  connections: number;
  resumes: number;
  reconnects: number;
  /** Messages decoded twice (lean decoder and the generated one) and compared, and how many disagreed. */
  checked: number;
  errors: string[];
  cpuSeconds: number;
}

// ---------------------------------------------------------------------------------------------------------
// IPC: parent <-> writer process.

/** A user the writer updates, with the labels it keeps (the filter's `team` among them). */
export interface WriteTarget {
  id: string;
  labels: Record<string, string>;
}

export interface WriterWarmup {
  type: "warmup";
  targets: WriteTarget[];
}

export interface WriterRun {
  type: "run";
  runId: string;
  rate: number;
  writes: number;
  targets: WriteTarget[];
}

export interface WriterWarmed {
  type: "warmed";
  failures: string[];
}

export interface WriterResult {
  type: "result";
  writes: number;
  /** Base64 bitmap of the writes that returned OK. */
  ok: string;
  okCount: number;
  /** Failed writes by gRPC code name. */
  failuresByCode: Record<string, number>;
  firstFailures: string[];
  /** UpdateUser latency (send -> response) of every write, failed ones included. */
  latency: SparseHistogram;
  /** Latest send behind its schedule, ms (the writer's own lag: should stay a few ms). */
  maxSendLagMs: number;
  /** Last send and last completion, ms after the first write was due. */
  lastSendMs: number;
  lastDoneMs: number;
  /** Writes that returned OK in each second after the first was due. */
  okPerSecond: number[];
  cpuSeconds: number;
}
