/**
 * A password-hashing thread (see hash-pool.ts). It lowers its own scheduling priority first: on Linux the
 * nice value is per thread, so the hashes computed here only take CPU the event loop does not need, and a
 * login storm cannot slow every other call down. The hashing itself is the synchronous native code, run on
 * this thread rather than on libuv's shared pool, which stays free for file, DNS and zlib work.
 */
import { setPriority } from "node:os";
import { isMainThread, parentPort } from "node:worker_threads";
import { hashSync, verifySync } from "@node-rs/argon2";
import { verifySync as verifyBcryptSync } from "@node-rs/bcrypt";
import type { HashJob, HashResult } from "./hash-pool.ts";

// Renicing the main thread would slow the whole service: this file must only ever be a worker's entry.
if (isMainThread || !parentPort) throw new Error("hash-worker.ts runs only as a worker thread");
const port = parentPort;

// Nice 10 (CFS weight 110 against 1024): the event loop wins a contended core ~90% of the time, yet hashing
// still progresses on a saturated machine (nice 19 could starve logins outright).
const HASH_NICE = 10;
try {
  setPriority(HASH_NICE);
} catch {
  // Not permitted (some containers): hashing still works, at normal priority.
}

function run(job: HashJob): string | boolean {
  switch (job.op) {
    case "hash":
      return hashSync(job.password, job.options);
    case "verify-argon2":
      return verifySync(job.phc, job.password);
    case "verify-bcrypt":
      return verifyBcryptSync(job.password, job.phc);
  }
}

port.on("message", (job: HashJob) => {
  let result: HashResult;
  try {
    result = { ok: true, value: run(job) };
  } catch (err) {
    result = { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(result);
});
