/**
 * Worker of rotating-body.ts: rewrites the id digits of the body file until told to stop.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { workerData } from "node:worker_threads";
import type { RotatorData } from "./rotating-body.ts";
import { ID_DIGITS } from "./seed.ts";

const { path, digitsOffset, bound, stop } = workerData as RotatorData;
const fd = openSync(path, "r+");
const digits = Buffer.alloc(ID_DIGITS);
while (Atomics.load(stop, 0) === 0) {
  digits.write(String(Math.floor(Math.random() * bound)).padStart(ID_DIGITS, "0"), "latin1");
  writeSync(fd, digits, 0, ID_DIGITS, digitsOffset);
  // Sleeps 0.5 ms (or until stop() notifies): ~1,500 ids a second for ~10 % of a core. Shorter sleeps cost
  // more CPU than they are worth on a 2-core machine that also runs the server, PostgreSQL and h2load.
  Atomics.wait(stop, 0, 0, 0.5);
}
closeSync(fd);
