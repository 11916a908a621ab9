/**
 * Rate limits shared by two replicas through a real redis-server (started here, in memory only): two
 * servers on one database with the same RATE_LIMIT_REDIS_URL. Calls split across both are limited at the
 * shared budget, not twice it, for the per-address limit (RATE_LIMIT_PER_SECOND=1, RATE_LIMIT_BURST=6: 6
 * calls per 6 s window) and for Login per email. Then Redis fails: a Redis that stops answering (SIGSTOP)
 * costs a call at most the command timeout, and a stopped Redis none at all; either way calls are still
 * answered, never INTERNAL nor UNAVAILABLE, and still limited, per replica, by the in-memory fallback;
 * once Redis is back the replicas share again.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { adminToken, uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { type RedisServer, startRedis } from "../helpers/redis.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText } from "../ops/prometheus-text.ts";
import { expectRetryLater } from "./expect.ts";

let redis: RedisServer;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  redis = await startRedis();
  const env = {
    DATABASE_URL: await createTestDatabase(),
    RATE_LIMIT_REDIS_URL: redis.url,
    RATE_LIMIT_PER_SECOND: "1",
    RATE_LIMIT_BURST: "6",
    RATE_LIMIT_LOGIN_PER_MINUTE: "4",
    TRUST_PROXY: "true",
  };
  a = await startTestServer(env);
  b = await startTestServer(env);
  await waitForLog(a, "rate-limit store (Redis) connected");
  await waitForLog(b, "rate-limit store (Redis) connected");
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
});

/** A public call from client `ip` (as the trusted local proxy reports it) to `server`. */
function publicCall(server: TestServer, ip: string) {
  return clients(server.url, "grpc").auth.logout(
    { refreshToken: "no-such-token" },
    { headers: { "x-forwarded-for": ip } },
  );
}

/** The `rate_limit_store_up` gauge of a server. */
async function storeUp(server: TestServer): Promise<number | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return parsePrometheusText(text).get("rate_limit_store_up");
}

/** Waits until `server` logs `text` (the servers start without waiting for Redis). */
async function waitForLog(server: TestServer, text: string): Promise<void> {
  for (let waited = 0; !server.logText().includes(text); waited += 50) {
    if (waited > 5000) throw new Error(`the server never logged "${text}"`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("two replicas with RATE_LIMIT_REDIS_URL", () => {
  it("share the per-address budget: 6 calls split across both, then both answer RATE_LIMITED", async () => {
    const ip = "203.0.113.1";
    for (const server of [a, b, a, b, a, b]) await publicCall(server, ip);
    await expectRetryLater(publicCall(a, ip), "RATE_LIMITED");
    const delay = await expectRetryLater(publicCall(b, ip), "RATE_LIMITED");
    expect(delay).toBeLessThanOrEqual(6000);
    // Another client still has its own budget.
    await publicCall(b, "203.0.113.2");
  });

  it("keep the counters in Redis, under the service's prefix, never with an email in clear", async () => {
    const probe = new Redis(redis.url);
    try {
      const keys = await probe.keys("*");
      expect(keys).toContain("user-service:rate:address:203.0.113.1");
      expect(keys.every((k) => k.startsWith("user-service:rate:"))).toBe(true);
      expect(keys.some((k) => k.includes("@"))).toBe(false);
    } finally {
      probe.disconnect();
    }
  });

  it("share the Login budget of an email", async () => {
    const email = uniqueEmail("shared");
    const login = (server: TestServer, i: number) =>
      clients(server.url, "grpc").auth.login(
        { email, password: "wrong-password" },
        { headers: { "x-forwarded-for": `198.51.100.${i}` } },
      );
    for (const [i, server] of [a, b, a, b].entries()) {
      expect((await failure(login(server, i))).reason).toBe("INVALID_CREDENTIALS");
    }
    await expectRetryLater(login(a, 10), "RATE_LIMITED");
    await expectRetryLater(login(b, 11), "RATE_LIMITED");
  });
});

/** Runs a call that must be answered, never with INTERNAL, UNKNOWN or UNAVAILABLE: its code and time. */
async function answered(call: Promise<unknown>): Promise<{ ms: number; code: Code; reason?: string }> {
  const started = performance.now();
  try {
    await call;
    return { ms: performance.now() - started, code: 0 as Code }; // OK
  } catch (err) {
    const f = await failure(Promise.reject(err));
    expect([Code.Internal, Code.Unknown, Code.Unavailable]).not.toContain(f.code);
    return { ms: performance.now() - started, code: f.code, reason: f.reason };
  }
}

const OK = { code: 0 };
const LIMITED = { code: Code.ResourceExhausted, reason: "RATE_LIMITED" };

describe("when Redis fails", () => {
  it("a Redis that stops answering delays calls by at most the command timeout, and they are answered", async () => {
    redis.process.kill("SIGSTOP");
    try {
      for (const server of [a, b]) {
        const r = await answered(publicCall(server, "192.0.2.1"));
        expect(r).toMatchObject(OK);
        expect(r.ms).toBeLessThan(1500);
      }
    } finally {
      redis.process.kill("SIGCONT");
    }
  });

  it("a stopped Redis: calls are answered at once, and still limited, per replica, in memory", async () => {
    expect(await storeUp(a)).toBe(1);
    await redis.stop();
    const ip = "192.0.2.2";
    for (let i = 0; i < 6; i++) {
      const r = await answered(publicCall(a, ip));
      expect(r, `call ${i + 1}`).toMatchObject(OK);
      expect(r.ms).toBeLessThan(1000);
    }
    expect(await answered(publicCall(a, ip))).toMatchObject(LIMITED);
    // The other replica counts on its own while Redis is away.
    expect(await answered(publicCall(b, ip))).toMatchObject(OK);
    // The per-account limits fail open the same way.
    const token = await adminToken(b.url);
    const change = () =>
      clients(b.url, "grpc", () => token).auth.changePassword({
        currentPassword: "wrong",
        newPassword: `pw-${randomUUID()}`,
      });
    expect(await answered(change())).toMatchObject({ code: Code.Unauthenticated, reason: "INVALID_CREDENTIALS" });
    await waitForLog(b, "rate-limit store (Redis) unavailable");
    expect(await storeUp(b)).toBe(0);
    expect(b.logText()).not.toContain(redis.url);
  });

  it("once Redis is back, the replicas share their budgets again", async () => {
    redis = await startRedis(redis.port);
    await waitForLog(a, "rate-limit store (Redis) is back");
    await waitForLog(b, "rate-limit store (Redis) is back");
    const ip = "192.0.2.3";
    for (const server of [b, a, b, a, b, a]) expect(await answered(publicCall(server, ip))).toMatchObject(OK);
    expect(await answered(publicCall(b, ip))).toMatchObject(LIMITED);
  });
});

it("RATE_LIMIT_REDIS_URL must be a redis:// or rediss:// URL, and the error does not quote it", () => {
  expect(loadConfig({ RATE_LIMIT_REDIS_URL: "rediss://:secret@cache.example:6380/0" }).rateLimitRedisUrl).toBe(
    "rediss://:secret@cache.example:6380/0",
  );
  for (const bad of ["http://:secret@cache.example", "secret-cache:6379"]) {
    expect(() => loadConfig({ RATE_LIMIT_REDIS_URL: bad })).toThrow(ConfigError);
    expect(() => loadConfig({ RATE_LIMIT_REDIS_URL: bad })).toThrow(/^RATE_LIMIT_REDIS_URL: /);
    try {
      loadConfig({ RATE_LIMIT_REDIS_URL: bad });
    } catch (err) {
      expect(String(err)).not.toContain("secret");
    }
  }
});
