/**
 * The request body file h2load posts, with a user id that keeps changing while the load runs.
 *
 * h2load sends one body file with every request, but reads it afresh (`pread`) for each request. A worker
 * thread rewrites the id's decimal digits in place about every 0.5 ms, so requests ask for random users among
 * the seeded ones (about 1,500 different ids a second; at 10k requests/s a few consecutive requests share
 * one), at h2load's speed. The digits are written in place without any locking: a read that
 * catches a write half done still sees decimal digits below `bound`, which is the index of a seeded user as
 * long as `bound` is a power of ten not above the number of users (see `idBound`).
 */
import { writeFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { ID_DIGITS } from "./seed.ts";

/** What the worker needs. */
export interface RotatorData {
  path: string;
  /** Offset of the id's last ID_DIGITS characters in the file. */
  digitsOffset: number;
  /** User indexes are drawn uniformly from [0, bound). */
  bound: number;
  /** Set to 1 to stop the worker. */
  stop: Int32Array;
}

/** The largest power of ten not above `users`: ids drawn below it stay valid even when read half written. */
export function idBound(users: number): number {
  return 10 ** Math.floor(Math.log10(users));
}

/** A body file being rewritten. */
export interface RotatingBody {
  /** Stops rewriting; resolves once the worker has exited. */
  stop(): Promise<void>;
}

/** Writes `body` to `path` and starts rewriting the id that ends at `idEnd` with random indexes below `bound`. */
export function startRotatingBody(path: string, body: Uint8Array, idEnd: number, bound: number): RotatingBody {
  writeFileSync(path, body);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const data: RotatorData = { path, digitsOffset: idEnd - ID_DIGITS, bound, stop };
  const worker = new Worker(new URL("./rotating-body.worker.ts", import.meta.url), { workerData: data });
  const exited = new Promise<void>((done, fail) => {
    worker.once("error", fail);
    worker.once("exit", () => done());
  });
  return {
    stop() {
      Atomics.store(stop, 0, 1);
      Atomics.notify(stop, 0);
      return exited;
    },
  };
}
