/**
 * What a running service holds, released last acquired first: on close, and when start-up fails half-way
 * (a port already in use must not leave the embedded PostgreSQL running). Each step gets `RELEASE_STEP_MS`:
 * a step that hangs (a pool waiting for a connection that is never given back) is logged by name and
 * skipped, so shutdown always completes.
 */
import type { Logger } from "pino";

/** How long each shutdown step may take, unless it says otherwise. */
const RELEASE_STEP_MS = 10_000;

/** Resolves as `work` does, or rejects with Error("timeout") after `ms`. */
export async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error("timeout")), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The stack of release steps. */
export interface Releases {
  /** Adds a step, named for the log; `ms` overrides how long it may take. */
  push(name: string, step: () => unknown, ms?: number): void;
  /** Runs every step pushed so far, last first, and forgets them. */
  releaseAll(): Promise<void>;
}

export function createReleases(log: Logger): Releases {
  const steps: [name: string, step: () => unknown, ms: number][] = [];
  return {
    push(name, step, ms = RELEASE_STEP_MS) {
      steps.push([name, step, ms]);
    },
    async releaseAll() {
      for (const [name, step, ms] of steps.splice(0).reverse())
        await withTimeout(Promise.resolve().then(step), ms).catch((err: unknown) => {
          if (err instanceof Error && err.message === "timeout")
            log.warn({ step: name, ms }, "shutdown step did not finish; going on without it");
        });
    },
  };
}
