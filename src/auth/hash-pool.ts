/**
 * Password hashing off the event loop and below its priority: a few worker threads (hash-worker.ts), each
 * hashing one password at a time at a lowered nice value, with waiting jobs served in arrival order. Why not
 * the native async API: it runs on libuv's 4-thread pool at normal priority, so a login storm kept every core
 * busy hashing and GetUser waited its turn for a core (bench/login-storm.ts measured its p99 several times
 * higher under a storm); the queue is bounded by the lockout and the rate limit.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

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

interface Pending {
  job: HashJob;
  resolve: (value: string | boolean) => void;
  reject: (err: Error) => void;
}

/**
 * The thread's entry, beside this module: `hash-worker.ts` when the sources run as they are, `hash-worker.js`
 * in the server bundle (dist/server, scripts/ensure-built.ts), where it is an entry of its own.
 */
const workerEntry = new URL(import.meta.url.endsWith(".ts") ? "./hash-worker.ts" : "./hash-worker.js", import.meta.url);

/** A pool of at most `size` hashing threads, started on first use and kept while the process lives. */
export function createHashPool(size: number) {
  const idle: Worker[] = [];
  const busy = new Map<Worker, Pending>();
  const queue: Pending[] = [];
  let started = 0;

  function spawn(): Worker {
    const worker = new Worker(workerEntry);
    started++;
    worker.on("message", (result: HashResult) => {
      const pending = busy.get(worker);
      busy.delete(worker);
      // An idle worker must not keep the process alive.
      worker.unref();
      idle.push(worker);
      if (pending) {
        if (result.ok) pending.resolve(result.value);
        else pending.reject(new Error(result.error));
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
      worker.postMessage(pending.job);
    }
  }

  return {
    /** Runs a job on the first free thread. */
    run(job: HashJob): Promise<string | boolean> {
      return new Promise((resolve, reject) => {
        queue.push({ job, resolve, reject });
        pump();
      });
    },
  };
}

/** The process-wide pool: one thread per core (they only use CPU the event loop leaves), at most 8. */
export const hashPool = createHashPool(Math.max(1, Math.min(availableParallelism(), 8)));
