/**
 * Keeps fan-out from starving everything else. One batch of changes sent to many watchers is a long run of
 * promise continuations in one turn of the event loop (1,000 watchers x 10 events is 10,000 messages through
 * connect's stream pipeline); meanwhile no socket is read, so writes waiting on PostgreSQL round trips stall
 * until their pool checkouts time out. Watchers call `turn()` before each message: within a slice of a few
 * milliseconds it resolves at once, after that it waits for the next turn of the loop (after I/O), so the
 * event loop alternates between fan-out slices and everything else. Delivery falls behind instead of
 * writes; a watcher that falls too far behind is ended and resumes from its token.
 */
const SLICE_MS = 4;

let sliceEnd = 0;
let waiting: (() => void)[] = [];

function startSlice(now: number): void {
  sliceEnd = now + SLICE_MS;
  // The next turn starts a new slice and lets the waiting watchers go, in the order they came.
  setImmediate(() => {
    sliceEnd = 0;
    const go = waiting;
    waiting = [];
    for (const resume of go) resume();
  });
}

function granted(): boolean {
  const now = performance.now();
  if (sliceEnd === 0) {
    startSlice(now);
    return true;
  }
  return now < sliceEnd;
}

/**
 * Undefined (go on) while this turn's slice lasts; otherwise a promise that resolves in a later turn of the
 * event loop, when this caller's share comes up.
 */
export function turn(): Promise<void> | undefined {
  if (granted()) return undefined;
  return new Promise<void>((resume) => waiting.push(resume)).then(turn);
}
