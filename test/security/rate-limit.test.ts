/**
 * The per-client rate limit of the public methods, over the wire, with RATE_LIMIT_PER_SECOND=2 and
 * RATE_LIMIT_BURST=3 (3 calls per window of ceil(3/2) = 2 s): the burst passes, the next call is
 * RATE_LIMITED with a RetryInfo whose delay is honest (waiting it is enough), and the limit is applied before
 * the request body is read. Behind a proxy (TRUST_PROXY=true) each X-Forwarded-For address has its own
 * bucket, and the address is the one the proxy appended, so a client cannot mint buckets by sending its own
 * header; without TRUST_PROXY the header is ignored and everyone on one peer shares a bucket.
 * (client-address.test.ts covers CIDR lists, IPv6 /64s and garbage; account-rate-limit.test.ts the
 * per-email and per-user limits; rate-limit-redis.test.ts limits shared by replicas.)
 */
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clients } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { forge, validClaims } from "../helpers/tokens.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";
import { expectRetryLater } from "./expect.ts";

const LIMITS = { RATE_LIMIT_PER_SECOND: "2", RATE_LIMIT_BURST: "3" };
const WINDOW_MS = 2000;

/** A cheap public call (Logout of an unknown token always answers OK), from `forwardedFor` if given. */
function publicCall(server: TestServer, forwardedFor?: string) {
  const headers: Record<string, string> = forwardedFor ? { "x-forwarded-for": forwardedFor } : {};
  return clients(server.url, "grpc").auth.logout({ refreshToken: "no-such-token" }, { headers });
}

/** The `rate_limited_total` counter of a limit. */
async function limitedCount(server: TestServer, limit: string): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return parsePrometheusText(text).get(sampleKey("rate_limited_total", { limit }));
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
    expect(await limitedCount(server, "address")).toBe(0);
    for (let i = 0; i < 3; i++) await publicCall(server);
    const delay = await expectRetryLater(publicCall(server), "RATE_LIMITED");
    expect(await limitedCount(server, "address")).toBe(1);
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(WINDOW_MS);
    await sleep(delay + 20);
    for (let i = 0; i < 3; i++) await publicCall(server);
    await expectRetryLater(publicCall(server), "RATE_LIMITED");
  });

  it("limits Login and SignUp as well, before any password is hashed", async () => {
    await sleep(WINDOW_MS + 50);
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
    expect(await query(server.databaseUrl, "select 1 from login_failures")).toHaveLength(0);
  });

  it("answers before the body is read: a limited call whose body never ends still gets RATE_LIMITED", async () => {
    await sleep(WINDOW_MS + 50);
    for (let i = 0; i < 3; i++) await publicCall(server);
    const session = http2.connect(server.url);
    try {
      const status = await new Promise<unknown>((done, fail) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/auth.v1.AuthService/Login",
          "content-type": "application/grpc",
          te: "trailers",
        });
        const take = (h: http2.IncomingHttpHeaders) => h["grpc-status"] !== undefined && done(h["grpc-status"]);
        req.on("response", take);
        req.on("trailers", take);
        req.on("error", fail);
        req.write(Buffer.from([0, 0, 0, 0x10, 0])); // announces 4 KiB, sends none of it, never ends
        setTimeout(() => fail(new Error("no answer within 3 s: the server waited for the body")), 3000);
      });
      expect(status).toBe("8"); // RESOURCE_EXHAUSTED
    } finally {
      session.destroy();
    }
  });

  it("ignores X-Forwarded-For: two claimed addresses share the peer's bucket", async () => {
    await sleep(WINDOW_MS + 50);
    for (let i = 0; i < 3; i++) await publicCall(server, "198.51.100.1");
    await expectRetryLater(publicCall(server, "198.51.100.2"), "RATE_LIMITED");
  });

  it("does not limit other authenticated methods per address (those are bounded by the token)", async () => {
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
