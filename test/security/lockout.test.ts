/**
 * Brute-force lockout over the wire: after 5 failed logins for an email, every login for it (the right
 * password included) is ACCOUNT_LOCKED (RESOURCE_EXHAUSTED with RetryInfo) for 15 minutes; 100 parallel
 * guesses get at most 5 password checks, which the login_failures row confirms; an unknown email is
 * answered exactly like a known one, in the same time; the lock ignores case and ends when it expires.
 * Only the failures of the last 15 minutes count (a sliding window). A login killed between its
 * reservation and its result (SIGKILL of the server process) still locks the email, and the lock ends.
 * Time is moved by moving the row's timestamps back in the database.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { expectRetryLater, retryDelayMs } from "./expect.ts";

let server: TestServer;
let admin: string;
let anon: Clients;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
  anon = clients(server.url, "grpc");
});
afterAll(() => server?.close());

const LOCK_MS = 15 * 60_000;
const login = (email: string, password: string) => anon.auth.login({ email, password });
const wrong = () => `wrong-${randomUUID()}`;

async function row(email: string): Promise<{ attempts: number; locked_until: Date | null } | undefined> {
  const rows = await query<{ attempts: number; locked_until: Date | null }>(
    server.databaseUrl,
    "select attempts, locked_until from login_failures where email_key = $1",
    [email.toLowerCase()],
  );
  return rows[0];
}

/** What a failed login answered, in a form two answers can be compared by. */
async function answer(email: string, password: string): Promise<string> {
  const f = await failure(login(email, password));
  return `${Code[f.code]} ${f.reason} ${f.message}`;
}

const INVALID = "Unauthenticated INVALID_CREDENTIALS wrong email or password";

describe("five failed logins", () => {
  let m: Member;
  beforeAll(async () => {
    m = await createMember(server.url, admin, { prefix: "locked" });
  });

  it("lock the email: the sixth login fails with ACCOUNT_LOCKED and RetryInfo, even with the right password", async () => {
    for (let i = 0; i < 5; i++) expect(await answer(m.email, wrong())).toBe(INVALID);
    const delay = await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
    expect(delay).toBeGreaterThan(LOCK_MS - 60_000);
    expect(delay).toBeLessThanOrEqual(LOCK_MS + 1000);
    const r = await row(m.email);
    expect(r?.locked_until?.getTime()).toBeGreaterThan(Date.now() + LOCK_MS - 60_000);
  });

  it("lock it whatever the case of the email", async () => {
    await expectRetryLater(login(m.email.toUpperCase(), m.password), "ACCOUNT_LOCKED");
  });

  it("do not lock anyone else", async () => {
    const other = await createMember(server.url, admin, { prefix: "bystander" });
    expect((await login(other.email, other.password)).user?.id).toBe(other.user.id);
  });

  it("stop locking once the lock has expired (the count starts again)", async () => {
    await query(
      server.databaseUrl,
      "update login_failures set locked_until = now() - interval '1 second' where email_key = $1",
      [m.email.toLowerCase()],
    );
    expect((await login(m.email, m.password)).user?.id).toBe(m.user.id);
    expect(await row(m.email)).toBeUndefined();
  });
});

describe("a successful login", () => {
  it("resets the count: 4 failures, a success, 4 failures, a success all pass", async () => {
    const m = await createMember(server.url, admin, { prefix: "reset" });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4; i++) expect(await answer(m.email, wrong())).toBe(INVALID);
      expect((await login(m.email, m.password)).user?.id).toBe(m.user.id);
    }
  });
});

/**
 * Fires 100 wrong-password logins at once; returns the reasons, counted. Besides the lockout, the bounded
 * hashing queue (HASH_QUEUE_MAX) may refuse some with RATE_LIMITED before they are counted, when they
 * arrive faster than they are answered.
 */
async function storm(email: string): Promise<Record<string, number>> {
  const results = await Promise.all(Array.from({ length: 100 }, () => failure(login(email, wrong()))));
  for (const f of results) if (f.reason === "ACCOUNT_LOCKED") expect(retryDelayMs(f.error)).toBeGreaterThan(0);
  const counts: Record<string, number> = {};
  for (const f of results) counts[f.reason] = (counts[f.reason] ?? 0) + 1;
  return counts;
}

describe("100 parallel wrong-password logins", () => {
  it("let at most 5 password checks through; the rest are ACCOUNT_LOCKED (or refused by the hashing queue), and so is the right password", async () => {
    const m = await createMember(server.url, admin, { prefix: "storm" });
    const counts = await storm(m.email);
    expect(counts.INVALID_CREDENTIALS ?? 0).toBeLessThanOrEqual(5);
    expect(counts.INVALID_CREDENTIALS ?? 0).toBeGreaterThan(0);
    expect(counts.ACCOUNT_LOCKED).toBeGreaterThan(0);
    expect(counts.ACCOUNT_LOCKED + (counts.RATE_LIMITED ?? 0)).toBe(100 - (counts.INVALID_CREDENTIALS ?? 0));
    const r = await row(m.email);
    expect(r?.attempts).toBeGreaterThanOrEqual(5);
    expect(r?.locked_until?.getTime()).toBeGreaterThan(Date.now() + LOCK_MS - 60_000);
    await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
  });

  it("at an unknown email behave identically, and leave an identical row", async () => {
    const email = uniqueEmail("nobody");
    const counts = await storm(email);
    expect(counts.INVALID_CREDENTIALS ?? 0).toBeLessThanOrEqual(5);
    expect(counts.ACCOUNT_LOCKED).toBeGreaterThan(0);
    expect(counts.ACCOUNT_LOCKED + (counts.RATE_LIMITED ?? 0)).toBe(100 - (counts.INVALID_CREDENTIALS ?? 0));
    expect((await row(email))?.locked_until).not.toBeNull();
  });
});

describe("an unknown email", () => {
  it("gets the very same answers as a known one, failure after failure, then the same lock", async () => {
    const m = await createMember(server.url, admin, { prefix: "known" });
    const unknown = uniqueEmail("unknown");
    for (let i = 0; i < 5; i++) expect(await answer(unknown, wrong())).toBe(await answer(m.email, wrong()));
    const a = await failure(login(unknown, wrong()));
    const b = await failure(login(m.email, m.password));
    expect([a.code, a.reason, a.message]).toEqual([b.code, b.reason, b.message]);
    expect([a.reason, Math.round(retryDelayMs(a.error) / 60_000)]).toEqual([
      "ACCOUNT_LOCKED",
      Math.round(retryDelayMs(b.error) / 60_000),
    ]);
  });

  it("takes as long as a wrong password for a known one (a dummy hash is verified)", async () => {
    const m = await createMember(server.url, admin, { prefix: "timing" });
    const unknown = uniqueEmail("timing-unknown");
    const time = async (email: string) => {
      const t = performance.now();
      await failure(login(email, wrong()));
      return performance.now() - t;
    };
    const known: number[] = [];
    const missing: number[] = [];
    for (let i = 0; i < 4; i++) {
      known.push(await time(m.email));
      missing.push(await time(unknown));
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const ratio = median(missing) / median(known);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });
});

/** Moves every timestamp of the email's row `minutes` into the past, as if that much time had passed. */
async function age(email: string, minutes: number): Promise<void> {
  await query(
    server.databaseUrl,
    `update login_failures set
       attempt_times = array(select t - make_interval(mins => $2) from unnest(attempt_times) t),
       locked_until = locked_until - make_interval(mins => $2),
       update_time = update_time - make_interval(mins => $2)
     where email_key = $1`,
    [email.toLowerCase(), minutes],
  );
}

describe("the 15-minute window", () => {
  it("forgets failures older than 15 minutes: 4 old ones and 4 new ones do not lock", async () => {
    const m = await createMember(server.url, admin, { prefix: "window" });
    for (let i = 0; i < 4; i++) expect(await answer(m.email, wrong())).toBe(INVALID);
    await age(m.email, 16);
    for (let i = 0; i < 4; i++) expect(await answer(m.email, wrong())).toBe(INVALID);
    // The 5th failure of the window is checked, and locks.
    expect(await answer(m.email, wrong())).toBe(INVALID);
    await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
  });

  it("slides: it counts the failures of the last 15 minutes, not of a window opened by the first one", async () => {
    const m = await createMember(server.url, admin, { prefix: "sliding" });
    expect(await answer(m.email, wrong())).toBe(INVALID); // A
    await age(m.email, 2);
    for (let i = 0; i < 3; i++) expect(await answer(m.email, wrong())).toBe(INVALID); // B, C, D
    await age(m.email, 14); // A is 16 minutes old (gone), B-D 14 (still counting)
    expect(await answer(m.email, wrong())).toBe(INVALID); // E: 4 in the window
    expect(await answer(m.email, wrong())).toBe(INVALID); // F: the 5th, checked, locks
    const delay = await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
    expect(delay).toBeGreaterThan(LOCK_MS - 60_000);
  });

  it("ends the lock after 15 minutes, and the count starts again", async () => {
    const m = await createMember(server.url, admin, { prefix: "lock-ends" });
    for (let i = 0; i < 5; i++) expect(await answer(m.email, wrong())).toBe(INVALID);
    await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
    await age(m.email, 14);
    await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
    await age(m.email, 2);
    // Four more failures are allowed again before the 5th locks.
    for (let i = 0; i < 4; i++) expect(await answer(m.email, wrong())).toBe(INVALID);
    expect((await login(m.email, m.password)).user?.id).toBe(m.user.id);
  });
});

describe("a login killed between its reservation and its result", () => {
  afterAll(() => killProcesses());

  it("still locks the email, on the next server, and the lock ends 15 minutes later", async () => {
    const databaseUrl = await createTestDatabase();
    const env = {
      DATABASE_URL: databaseUrl,
      RATE_LIMIT_PER_SECOND: "100000",
      RATE_LIMIT_BURST: "100000",
      RATE_LIMIT_LOGIN_PER_MINUTE: "100000",
    };
    const first = await startProcess(env);
    const c = clients(first.url, "grpc");
    const m = await createMember(first.url, await adminToken(first.url), { prefix: "killed" });
    for (let i = 0; i < 4; i++) {
      const f = await failure(c.auth.login({ email: m.email, password: wrong() }));
      expect(f.reason).toBe("INVALID_CREDENTIALS");
    }
    // Keep the hashing threads busy, so the 5th login (with the right password) waits for its check after
    // its reservation; kill the process as soon as the reservation is in the database.
    const filler = Array.from({ length: 30 }, () =>
      c.auth.login({ email: uniqueEmail("filler"), password: wrong() }).catch(() => undefined),
    );
    const fifth = c.auth.login({ email: m.email, password: m.password }).then(
      () => "completed",
      (e: unknown) => `failed: ${Code[(e as { code: Code }).code]}`,
    );
    const key = m.email.toLowerCase();
    for (;;) {
      const [r] = await query<{ attempts: number }>(
        databaseUrl,
        "select attempts from login_failures where email_key = $1",
        [key],
      );
      if (r?.attempts === 5) break;
      await new Promise((done) => setTimeout(done, 2));
    }
    first.child.kill("SIGKILL");
    await first.exited;
    await Promise.all(filler);
    // The 5th login never got its answer: it was interrupted after its reservation.
    expect(await fifth).not.toBe("completed");
    const [row] = await query<{ attempts: number; locked_until: Date | null }>(
      databaseUrl,
      "select attempts, locked_until from login_failures where email_key = $1",
      [key],
    );
    expect(row.attempts).toBe(5);
    expect(row.locked_until?.getTime()).toBeGreaterThan(Date.now() + LOCK_MS - 60_000);

    const second = await startProcess(env);
    const again = clients(second.url, "grpc").auth;
    await expectRetryLater(again.login({ email: m.email, password: m.password }), "ACCOUNT_LOCKED");
    // 15 minutes later (the row's timestamps moved back), the right password works.
    await query(
      databaseUrl,
      `update login_failures set
         attempt_times = array(select t - interval '15 minutes 1 second' from unnest(attempt_times) t),
         locked_until = locked_until - interval '15 minutes 1 second'
       where email_key = $1`,
      [key],
    );
    expect((await again.login({ email: m.email, password: m.password })).user?.id).toBe(m.user.id);
  }, 60_000);
});
