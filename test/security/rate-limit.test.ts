/**
 * The per-client rate limit of the public methods, over the wire, with RATE_LIMIT_PER_SECOND=2 and
 * RATE_LIMIT_BURST=3: the burst passes, the next call is RATE_LIMITED with a RetryInfo whose delay is
 * honest (waiting it is enough). Behind a proxy (TRUST_PROXY=true) each X-Forwarded-For address has its
 * own bucket, and the address is the one the proxy appended, so a client cannot mint buckets by sending
 * its own header; without TRUST_PROXY the header is ignored and everyone on one peer shares a bucket.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clients } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { forge, validClaims } from "../helpers/tokens.ts";
import { expectRetryLater } from "./expect.ts";

const LIMITS = { RATE_LIMIT_PER_SECOND: "2", RATE_LIMIT_BURST: "3" };

/** A cheap public call (Logout of an unknown token always answers OK), from `forwardedFor` if given. */
function publicCall(server: TestServer, forwardedFor?: string) {
  const headers: Record<string, string> = forwardedFor ? { "x-forwarded-for": forwardedFor } : {};
  return clients(server.url, "grpc").auth.logout({ refreshToken: "no-such-token" }, { headers });
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe("without a proxy (TRUST_PROXY=false)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...LIMITS, TRUST_PROXY: "false" });
  });
  afterAll(() => server?.close());

  it("lets the burst through, then answers RATE_LIMITED with a RetryInfo that is enough to wait", async () => {
    await sleep(1600); // a full bucket, whatever start-up did
    for (let i = 0; i < 3; i++) await publicCall(server);
    const delay = await expectRetryLater(publicCall(server), "RATE_LIMITED");
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(500); // one token at 2 per second
    await sleep(delay + 20);
    await publicCall(server);
  });

  it("limits Login and SignUp as well, before any password is hashed", async () => {
    await sleep(1600);
    const c = clients(server.url, "connect-h1");
    for (let i = 0; i < 3; i++) await c.auth.logout({ refreshToken: "x-token" });
    await expectRetryLater(
      c.auth.login({ email: "someone@example.com", password: "whatever-password" }),
      "RATE_LIMITED",
    );
    await expectRetryLater(
      c.auth.signUp({ email: "new@example.com", password: "whatever-password", displayName: "New" }),
      "RATE_LIMITED",
    );
    await expectRetryLater(c.auth.refreshToken({ refreshToken: "x-token" }), "RATE_LIMITED");
    expect(await query(server.databaseUrl, "select 1 from users where email = 'new@example.com'")).toHaveLength(0);
  });

  it("ignores X-Forwarded-For: two claimed addresses share the peer's bucket", async () => {
    await sleep(1600);
    for (let i = 0; i < 3; i++) await publicCall(server, "198.51.100.1");
    await expectRetryLater(publicCall(server, "198.51.100.2"), "RATE_LIMITED");
  });

  it("does not limit authenticated methods (those are bounded by the token, not the address)", async () => {
    const [admin] = await query<{ id: string }>(server.databaseUrl, "select id from users where role = 'admin'");
    const token = forge(validClaims(admin.id, "ROLE_ADMIN"));
    for (let i = 0; i < 10; i++) await clients(server.url, "grpc", () => token).auth.getCurrentUser({});
  });
});

describe("behind a trusted proxy (TRUST_PROXY=true)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...LIMITS, TRUST_PROXY: "true" });
  });
  afterAll(() => server?.close());

  it("gives two X-Forwarded-For addresses separate buckets", async () => {
    for (let i = 0; i < 3; i++) await publicCall(server, "203.0.113.1");
    await expectRetryLater(publicCall(server, "203.0.113.1"), "RATE_LIMITED");
    for (let i = 0; i < 3; i++) await publicCall(server, "203.0.113.2");
    await expectRetryLater(publicCall(server, "203.0.113.2"), "RATE_LIMITED");
  });

  it("keys on the address the proxy appended, not on what the client put before it", async () => {
    for (let i = 0; i < 3; i++) await publicCall(server, `10.0.0.${i}, 203.0.113.9`);
    await expectRetryLater(publicCall(server, "10.9.9.9, 203.0.113.9"), "RATE_LIMITED");
  });
});
