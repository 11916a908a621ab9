/**
 * The password-hashing pool (src/passwords/hash-pool.ts): hashes are argon2id at the contract's parameters and
 * verify; the hashing threads run below the event loop's priority (Linux nice, per thread); a bad hash is a
 * rejection, not a dead pool; many jobs at once all complete; beyond its bound the queue refuses at once
 * (RESOURCE_EXHAUSTED), and over the wire a refused login is neither INTERNAL nor a counted failure.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHashPool } from "../../src/passwords/hash-pool.ts";
import { hashPassword, verifyPassword } from "../../src/passwords/passwords.ts";
import { ServiceError } from "../../src/rpc/errors.ts";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, reasonOf } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { retryDelayMs } from "./expect.ts";

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

describe("the queue's bound", () => {
  const job = (password: string) =>
    ({ op: "hash", password, options: { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } }) as const;

  it("refuses a job at once with RATE_LIMITED and a RetryInfo when full; bulk work and reserved places still get in", async () => {
    const pool = createHashPool(1, { maxWaiting: 2 });
    // One running, two waiting: the queue is full.
    const admitted = [pool.run(job("a")), pool.run(job("b")), pool.run(job("c"))];
    const refused = await pool.run(job("d")).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(ServiceError);
    expect((refused as ServiceError).reason).toBe("RATE_LIMITED");
    expect((refused as ServiceError).retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect(() => pool.reserve()).toThrow(ServiceError);
    const bulk = pool.run(job("e"), { wait: true });
    expect(pool.waiting()).toBe(3);
    await Promise.all([...admitted, bulk]);
    expect(pool.waiting()).toBe(0);
    // A reserved place is counted as waiting, and its job is queued even when the queue has filled since.
    const slot = pool.reserve();
    const more = [pool.run(job("f")), pool.run(job("g"))];
    expect(pool.waiting()).toBe(2);
    await expect(pool.run(job("h"))).rejects.toBeInstanceOf(ServiceError);
    const held = pool.run(job("i"), { slot });
    slot.release(); // a no-op once the job has the place
    expect(pool.waiting()).toBe(2);
    await Promise.all([...more, held]);
  });

  it("a hash it cannot read is a wrong password, a full queue is not", async () => {
    expect(await verifyPassword("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$nothash", "x")).toBe(false);
  });
});

describe("a burst of logins against a queue of one (HASH_QUEUE_MAX=1), over the wire", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ HASH_QUEUE_MAX: "1" });
  });
  afterAll(() => server?.close());

  it("gets RESOURCE_EXHAUSTED (RATE_LIMITED, with RetryInfo) for some, INTERNAL for none, and counts no refused attempt", async () => {
    const admin = await adminToken(server.url);
    const members: Member[] = [];
    for (let i = 0; i < 4; i++) members.push(await createMember(server.url, admin, { prefix: "burst" }));
    await query(server.databaseUrl, "delete from login_failures");
    const auth = clients(server.url, "grpc").auth;
    // 40 logins at once: the members with their passwords, unknown emails (the dummy check), wrong passwords.
    const attempts = Array.from({ length: 40 }, (_, i) => {
      const m = members[i % members.length];
      if (i < members.length) return { email: m.email, password: m.password };
      return i % 2 === 0
        ? { email: `${randomUUID()}@example.com`, password: "not a known user" }
        : { email: `${randomUUID()}@example.com`, password: "another wrong one" };
    });
    const outcomes = await Promise.all(
      attempts.map((a) =>
        auth.login(a).then(
          () => ({ email: a.email, code: "OK", reason: "" }),
          (err: unknown) => {
            const e = ConnectError.from(err);
            return { email: a.email, code: Code[e.code], reason: reasonOf(e), error: e };
          },
        ),
      ),
    );
    const by = (reason: string) => outcomes.filter((o) => o.reason === reason);
    expect(outcomes.filter((o) => o.code === "Internal" || o.code === "Unavailable")).toEqual([]);
    expect(by("RATE_LIMITED").length).toBeGreaterThan(0);
    for (const o of by("RATE_LIMITED")) {
      expect(o.code).toBe("ResourceExhausted");
      expect(retryDelayMs((o as { error: ConnectError }).error)).toBeGreaterThanOrEqual(1000);
    }
    expect(by("INVALID_CREDENTIALS").length + outcomes.filter((o) => o.code === "OK").length).toBeGreaterThan(0);
    expect(new Set(outcomes.map((o) => o.reason))).toEqual(
      new Set(["", "RATE_LIMITED", "INVALID_CREDENTIALS"].filter((r) => outcomes.some((o) => o.reason === r))),
    );
    // Only the attempts that were checked and failed are counted: a refused one left no trace.
    const counted = await query<{ email_key: string }>(server.databaseUrl, "select email_key from login_failures");
    expect(counted.map((r) => r.email_key).sort()).toEqual(
      by("INVALID_CREDENTIALS")
        .map((o) => o.email)
        .sort(),
    );
    // And once the burst is over, every member logs in.
    for (const m of members)
      expect((await auth.login({ email: m.email, password: m.password })).user?.email).toBe(m.email);
  });
});
