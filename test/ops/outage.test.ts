/**
 * Database outage: PostgreSQL stops for a few seconds mid-load and comes back. Calls during the outage
 * answer UNAVAILABLE quickly, health turns NOT_SERVING and back, a watcher stays connected and sees every
 * change made after recovery, and every write acknowledged before the outage is still there.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { WatchEventType } from "../../gen/user/v1/user_service_pb.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/db/embedded-postgres.ts";
import { clients, failure } from "../helpers/clients.ts";
import { healthClient } from "../helpers/health.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

let dir: string;
let pg: EmbeddedPostgres;
let server: TestServer;
let token = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "user-service-outage-"));
  pg = await startEmbeddedPostgres(dir, () => {});
  server = await startTestServer({ DATABASE_URL: pg.url });
  token = (await clients(server.url, "grpc").auth.login(ADMIN)).tokens?.accessToken ?? "";
}, 120_000);

afterAll(async () => {
  await server?.close();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return true;
    await wait(100);
  }
  return false;
}

it("answers UNAVAILABLE during an outage and recovers without a restart", async () => {
  const c = clients(server.url, "grpc", () => token);
  const health = healthClient(server.url);
  const acknowledged: string[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await c.users.createUser({ user: { email: `before-${i}@example.com`, displayName: `Before ${i}` } });
    acknowledged.push(res.user?.id ?? "");
  }

  const seen: string[] = [];
  let watchEnded: unknown = "still open";
  const ac = new AbortController();
  const watching = (async () => {
    try {
      for await (const e of clients(server.url, "connect-h2", () => token).users.watchUsers(
        {},
        { signal: ac.signal },
      )) {
        if (e.type === WatchEventType.CREATED) seen.push(e.user?.email ?? "");
      }
      watchEnded = "ended";
    } catch (err) {
      watchEnded = err;
    }
  })();
  await wait(300);

  await pg.stop();
  const probes = await Promise.all(
    Array.from({ length: 10 }, async (_, i) => {
      const started = Date.now();
      const f = await failure(
        i % 2
          ? c.users.getUser({ userId: acknowledged[0] })
          : c.users.createUser({ user: { email: `during-${i}@example.com`, displayName: "D" } }),
      );
      return { ms: Date.now() - started, code: f.code, reason: f.reason };
    }),
  );
  for (const p of probes) {
    expect(p.code).toBe(Code.Unavailable);
    expect(p.reason).toBe("UNAVAILABLE");
    expect(p.ms).toBeLessThan(2000);
  }
  expect(
    await until(
      async () => (await health.check({ service: "" })).status === HealthCheckResponse_ServingStatus.NOT_SERVING,
      5000,
    ),
  ).toBe(true);
  expect((await fetch(`${server.url}/readyz`)).status).toBe(503);

  await wait(3000);
  pg = await startEmbeddedPostgres(dir, () => {}, { port: pg.port });
  expect(
    await until(
      async () => (await health.check({ service: "" })).status === HealthCheckResponse_ServingStatus.SERVING,
      10_000,
    ),
  ).toBe(true);
  expect(await until(async () => (await fetch(`${server.url}/readyz`)).status === 200, 10_000)).toBe(true);

  for (let i = 0; i < 5; i++)
    await c.users.createUser({ user: { email: `after-${i}@example.com`, displayName: `After ${i}` } });
  expect(await until(async () => seen.filter((e) => e.startsWith("after-")).length === 5, 5000)).toBe(true);
  expect(watchEnded).toBe("still open");
  ac.abort();
  await watching;

  const got = await c.users.batchGetUsers({ userIds: acknowledged });
  expect(got.users.map((u) => u.id)).toEqual(acknowledged);
}, 60_000);
