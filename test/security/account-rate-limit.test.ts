/**
 * Per-account rate limits over the wire, on top of the per-address one (kept out of the way here): Login
 * per email (RATE_LIMIT_LOGIN_PER_MINUTE=3) and ChangePassword per user
 * (RATE_LIMIT_CHANGE_PASSWORD_PER_MINUTE=2). Over the limit a call is RATE_LIMITED with a RetryInfo, before
 * any password is checked: it neither counts towards the lockout nor changes anything. Case variants of an
 * email count as one email, an unknown email is limited like a known one, and the ChangePassword budget
 * belongs to the user, whichever token is used.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";
import { expectRetryLater } from "./expect.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer({ RATE_LIMIT_LOGIN_PER_MINUTE: "3", RATE_LIMIT_CHANGE_PASSWORD_PER_MINUTE: "2" });
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

/** A user with a password, created by the admin (no Login spent). */
async function newUser(prefix: string): Promise<{ id: string; email: string; password: string }> {
  const email = uniqueEmail(prefix);
  const password = `pw-${randomUUID()}`;
  const res = await clients(server.url, "grpc", () => admin).users.createUser({
    user: { email, displayName: "Limited" },
    password,
  });
  return { id: res.user?.id ?? "", email, password };
}

const auth = () => clients(server.url, "grpc").auth;

async function lockoutAttempts(email: string): Promise<number | undefined> {
  const rows = await query<{ attempts: number }>(
    server.databaseUrl,
    "select attempts from login_failures where email_key = $1",
    [email.toLowerCase()],
  );
  return rows[0]?.attempts;
}

/** The `rate_limited_total` counter of a limit. */
async function limitedCount(limit: string): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return parsePrometheusText(text).get(sampleKey("rate_limited_total", { limit }));
}

describe("Login per email", () => {
  it("passes 3 logins of one email a minute, then answers RATE_LIMITED for any case of it", async () => {
    const u = await newUser("login-limit");
    await auth().login({ email: u.email, password: u.password });
    await auth().login({ email: u.email, password: u.password });
    expect((await failure(auth().login({ email: u.email, password: "wrong-password" }))).reason).toBe(
      "INVALID_CREDENTIALS",
    );
    const delay = await expectRetryLater(
      auth().login({ email: u.email.toUpperCase(), password: u.password }),
      "RATE_LIMITED",
    );
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(60_000);
    await expectRetryLater(auth().login({ email: u.email, password: "wrong-again" }), "RATE_LIMITED");
    expect(await limitedCount("login")).toBeGreaterThanOrEqual(2);
    // The limited attempts never reached the password check: one failure on record, no lock.
    expect(await lockoutAttempts(u.email)).toBe(1);
  });

  it("limits an unknown email exactly like a known one", async () => {
    const email = uniqueEmail("nobody");
    for (let i = 0; i < 3; i++) {
      expect((await failure(auth().login({ email, password: "some-password" }))).reason).toBe("INVALID_CREDENTIALS");
    }
    await expectRetryLater(auth().login({ email, password: "some-password" }), "RATE_LIMITED");
  });

  it("leaves other emails alone", async () => {
    const u = await newUser("other-email");
    const res = await auth().login({ email: u.email, password: u.password });
    expect(res.tokens?.accessToken).toBeTruthy();
  });
});

describe("ChangePassword per user", () => {
  it("passes 2 calls of one user a minute, then RATE_LIMITED whichever token, and the password is kept", async () => {
    const u = await newUser("chpw-limit");
    const first = (await auth().login({ email: u.email, password: u.password })).tokens?.accessToken;
    const second = (await auth().login({ email: u.email, password: u.password })).tokens?.accessToken;
    const as = (token: string | undefined) => clients(server.url, "grpc", () => token).auth;
    for (let i = 0; i < 2; i++) {
      const f = await failure(
        as(first).changePassword({ currentPassword: "wrong", newPassword: `pw-${randomUUID()}` }),
      );
      expect(f.reason).toBe("INVALID_CREDENTIALS");
    }
    const newPassword = `pw-${randomUUID()}`;
    const delay = await expectRetryLater(
      as(second).changePassword({ currentPassword: u.password, newPassword }),
      "RATE_LIMITED",
    );
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(60_000);
    expect(await lockoutAttempts(u.email)).toBe(2);
    expect(await limitedCount("change_password")).toBe(1);
    // Unchanged: the new password does not log in.
    expect((await failure(auth().login({ email: u.email, password: newPassword }))).reason).toBe("INVALID_CREDENTIALS");
  });

  it("leaves other users alone", async () => {
    const u = await newUser("chpw-other");
    const token = (await auth().login({ email: u.email, password: u.password })).tokens?.accessToken;
    const res = await clients(server.url, "grpc", () => token).auth.changePassword({
      currentPassword: u.password,
      newPassword: `pw-${randomUUID()}`,
    });
    expect(res.tokens?.accessToken).toBeTruthy();
  });
});
