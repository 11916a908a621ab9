/**
 * Brute-force lockout over the wire: after 5 failed logins for an email, every login for it (the right
 * password included) is ACCOUNT_LOCKED (RESOURCE_EXHAUSTED with RetryInfo) for 15 minutes; 100 parallel
 * guesses get at most 5 password checks, which the login_failures row confirms; an unknown email is
 * answered exactly like a known one, in the same time; the lock ignores case and ends when it expires.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
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

/** Fires 100 wrong-password logins at once; returns the reasons, counted. */
async function storm(email: string): Promise<Record<string, number>> {
  const results = await Promise.all(Array.from({ length: 100 }, () => failure(login(email, wrong()))));
  for (const f of results) if (f.reason === "ACCOUNT_LOCKED") expect(retryDelayMs(f.error)).toBeGreaterThan(0);
  const counts: Record<string, number> = {};
  for (const f of results) counts[f.reason] = (counts[f.reason] ?? 0) + 1;
  return counts;
}

describe("100 parallel wrong-password logins", () => {
  it("let at most 5 password checks through; the rest are ACCOUNT_LOCKED, and so is the right password", async () => {
    const m = await createMember(server.url, admin, { prefix: "storm" });
    const counts = await storm(m.email);
    expect(counts.INVALID_CREDENTIALS ?? 0).toBeLessThanOrEqual(5);
    expect(counts.INVALID_CREDENTIALS ?? 0).toBeGreaterThan(0);
    expect(counts.ACCOUNT_LOCKED).toBe(100 - (counts.INVALID_CREDENTIALS ?? 0));
    const r = await row(m.email);
    expect(r?.attempts).toBeGreaterThanOrEqual(5);
    expect(r?.locked_until?.getTime()).toBeGreaterThan(Date.now() + LOCK_MS - 60_000);
    await expectRetryLater(login(m.email, m.password), "ACCOUNT_LOCKED");
  });

  it("at an unknown email behave identically, and leave an identical row", async () => {
    const email = uniqueEmail("nobody");
    const counts = await storm(email);
    expect(counts.INVALID_CREDENTIALS ?? 0).toBeLessThanOrEqual(5);
    expect(counts.ACCOUNT_LOCKED).toBe(100 - (counts.INVALID_CREDENTIALS ?? 0));
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
