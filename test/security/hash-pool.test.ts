/**
 * The password-hashing pool (src/auth/hash-pool.ts): hashes are argon2id at the contract's parameters and
 * verify; the hashing threads run below the event loop's priority (Linux nice, per thread); a bad hash is a
 * rejection, not a dead pool; many jobs at once all complete.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hashPassword, verifyPassword } from "../../src/auth/passwords.ts";

/** Nice values of this process's threads, by thread name. */
function niceByThread(): { name: string; nice: number }[] {
  return readdirSync("/proc/self/task").map((tid) => ({
    name: readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim(),
    nice: Number(readFileSync(`/proc/self/task/${tid}/stat`, "utf8").split(") ")[1].split(" ")[16]),
  }));
}

describe("the hashing pool", () => {
  it("hashes with argon2id at the contract's parameters, and verifies", async () => {
    const phc = await hashPassword("correct horse battery staple");
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword(phc, "correct horse battery staple")).toBe(true);
    expect(await verifyPassword(phc, "wrong horse")).toBe(false);
    expect(await verifyPassword("$argon2id$garbage", "x")).toBe(false);
  });

  it("runs its threads at a lower priority than the event loop", async () => {
    await hashPassword("warm the pool");
    const threads = niceByThread();
    const main = threads.find((t) => t.name === "MainThread" || t.name === "node");
    expect(threads.some((t) => t.nice > (main?.nice ?? 0))).toBe(true);
    expect(threads[0].nice).toBe(0); // the first task is the process's main thread: untouched
  });

  it("completes 40 jobs sent at once, in any mix", async () => {
    const phc = await hashPassword("many at once");
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => verifyPassword(phc, i % 2 === 0 ? "many at once" : "nope")),
    );
    expect(results.filter(Boolean)).toHaveLength(20);
  });
});
