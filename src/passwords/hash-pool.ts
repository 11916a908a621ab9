/**
 * Password hashing off the event loop and below its priority: a few worker threads (hash-worker.ts), each
 * hashing one password at a time at a lowered nice value, with waiting jobs served in arrival order. Why not
 * the native async API: it runs on libuv's 4-thread pool at normal priority, so a login storm kept every core
 * busy hashing and GetUser waited its turn for a core (bench/login-storm.ts measured its p99 several times
 * higher under a storm).
 *
 * The queue is bounded (`maxWaiting`): beyond it a job is refused at once with RESOURCE_EXHAUSTED and a
 * RetryInfo, instead of every caller waiting longer and the queue's memory growing with the storm. A caller
 * that must not be refused half-way (a Login, whose attempt the lockout counts before the password is
 * checked) reserves its place first with `reserve()`; bulk work that can wait (ImportUsers) passes
 * `{ wait: true }` and is never refused, as it bounds its own concurrency.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ServiceError } from "../rpc/errors.ts";

/** What a worker is asked to do. */
export type HashJob =
  | {
      op: "hash";
      password: string;
      options: { algorithm: 2; memoryCost: number; timeCost: number; parallelism: number };
    }
  | { op: "verify-argon2"; phc: string; password: string }
  | { op: "verify-bcrypt"; phc: string; password: string };

/** What a worker answers. */
export type HashResult = { ok: true; value: string | boolean } | { ok: false; error: string };

/** A job the worker could not do (an unreadable hash): the caller decides what it means. */
export class HashJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HashJobError";
  }
}

/** A place in the queue held ahead of the job that will use it; released when unused. */
export interface HashSlot {
  release(): void;
  /** Hands the place over to a job: true when it was still held. */
  take(): boolean;
}

/** How a job is queued: on a reserved slot, or waiting for room (bulk work), or else refused when full. */
export interface RunOptions {
  slot?: HashSlot;
  wait?: boolean;
}

interface Pending {
  job: HashJob;
  resolve: (value: string | boolean) => void;
  reject: (err: Error) => void;
  startedAt?: number;
}

/**
 * The thread's entry, beside this module: `hash-worker.ts` when the sources run as they are, `hash-worker.js`
 * in the server bundle (dist/server, scripts/ensure-built.ts), where it is an entry of its own.
 */
const workerEntry = new URL(import.meta.url.endsWith(".ts") ? "./hash-worker.ts" : "./hash-worker.js", import.meta.url);

/** Waiting jobs allowed per hashing thread by default: at ~25 ms a hash, about a second of work. */
const WAITING_PER_THREAD = 32;

/** A pool of at most `size` hashing threads, started on first use and kept while the process lives. */
export function createHashPool(size: number, opts: { maxWaiting?: number } = {}) {
  const idle: Worker[] = [];
  const busy = new Map<Worker, Pending>();
  const queue: Pending[] = [];
  let started = 0;
  const defaultMax = opts.maxWaiting ?? WAITING_PER_THREAD * size;
  let maxWaiting = defaultMax;
  let reserved = 0;
  // Moving average of a job's duration, for the RetryInfo of a refusal.
  let jobMs = 25;

  function spawn(): Worker {
    const worker = new Worker(workerEntry);
    started++;
    worker.on("message", (result: HashResult) => {
      const pending = busy.get(worker);
      busy.delete(worker);
      if (pending?.startedAt) jobMs += (performance.now() - pending.startedAt - jobMs) / 8;
      // An idle worker must not keep the process alive.
      worker.unref();
      idle.push(worker);
      if (pending) {
        if (result.ok) pending.resolve(result.value);
        else pending.reject(new HashJobError(result.error));
      }
      pump();
    });
    worker.on("error", () => {});
    worker.on("exit", () => {
      started--;
      const at = idle.indexOf(worker);
      if (at >= 0) idle.splice(at, 1);
      busy.get(worker)?.reject(new Error("the hashing thread exited"));
      busy.delete(worker);
      pump();
    });
    return worker;
  }

  function pump(): void {
    while (queue.length > 0 && (idle.length > 0 || started < size)) {
      const worker = idle.pop() ?? spawn();
      const pending = queue.shift() as Pending;
      busy.set(worker, pending);
      worker.ref();
      pending.startedAt = performance.now();
      worker.postMessage(pending.job);
    }
  }

  /** RESOURCE_EXHAUSTED, with the time the queue needs to drain as the RetryInfo (whole seconds, at least 1). */
  function overloaded(): ServiceError {
    const drainMs = ((queue.length + reserved) / size) * jobMs;
    return new ServiceError("RATE_LIMITED", "too many password checks in progress; retry shortly", {
      retryAfterMs: Math.max(1000, Math.ceil(drainMs / 1000) * 1000),
    });
  }

  const full = () => queue.length + reserved >= maxWaiting;

  return {
    /** Holds a place in the queue for a job to come; throws RATE_LIMITED (nothing held) when full. */
    reserve(): HashSlot {
      if (full()) throw overloaded();
      reserved++;
      let held = true;
      const take = () => {
        if (!held) return false;
        held = false;
        reserved--;
        return true;
      };
      return { take, release: take };
    },

    /** Runs a job on the first free thread; rejects at once with RATE_LIMITED when the queue is full. */
    run(job: HashJob, opts: RunOptions = {}): Promise<string | boolean> {
      return new Promise((resolve, reject) => {
        if (!opts.slot?.take() && !opts.wait && full()) {
          reject(overloaded());
          return;
        }
        queue.push({ job, resolve, reject });
        pump();
      });
    },

    /** Sets the bound on waiting jobs (HASH_QUEUE_MAX); undefined restores the pool's default. */
    limit(waiting: number | undefined): void {
      maxWaiting = waiting ?? defaultMax;
    },

    /** Jobs waiting for a thread, and places reserved: for tests and metrics. */
    waiting(): number {
      return queue.length + reserved;
    },
  };
}

/** Hashing threads: one per core (they only use CPU the event loop leaves), at most 8. */
export const HASH_THREADS = Math.max(1, Math.min(availableParallelism(), 8));

/** The process-wide pool. */
export const hashPool = createHashPool(HASH_THREADS);
