/**
 * GET /metrics on the real server: valid Prometheus text with the right content type, process and pool
 * metrics, RPC counters and latency that move with calls, and open streams that go back down however a
 * stream ends.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createMetrics } from "../../src/ops/metrics.ts";
import { clients, transport } from "../helpers/clients.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, type Samples, sampleKey } from "./prometheus-text.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

async function scrape(): Promise<Samples> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(await res.text());
}

const handled = (service: string, method: string, protocol: string, code: string) =>
  sampleKey("rpc_server_handled_total", { service, method, protocol, code });
const openStreams = (service: string, method: string) => sampleKey("rpc_server_open_streams", { service, method });

describe("/metrics", () => {
  it("is valid Prometheus text with process and database pool metrics", async () => {
    const samples = await scrape();
    expect(samples.get("process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(samples.has("nodejs_eventloop_lag_seconds")).toBe(true);
    for (const pool of ["orm", "queries"]) {
      expect(samples.get(sampleKey("db_pool_connections", { pool, state: "in_use" }))).toBeGreaterThanOrEqual(0);
      expect(samples.get(sampleKey("db_pool_connections", { pool, state: "idle" }))).toBeGreaterThanOrEqual(0);
      expect(samples.get(sampleKey("db_pool_waiting_requests", { pool }))).toBe(0);
    }
  });

  it("answers HEAD without a body and refuses other methods", async () => {
    const head = await fetch(`${server.url}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    expect((await fetch(`${server.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("counts calls by service, method, protocol and code, and times unary calls", async () => {
    const before = await scrape();
    const grpcHealth = createClient(Health, transport(server.url, "grpc"));
    await grpcHealth.check({ service: "" });
    await grpcHealth.check({ service: "" });
    await grpcHealth.check({ service: "nope" }).catch(() => {});
    await clients(server.url, "connect-h1").auth.login(ADMIN);
    await createClient(Health, transport(server.url, "grpc-web-h1")).check({ service: "" });

    const after = await scrape();
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    expect(delta(handled("grpc.health.v1.Health", "Check", "grpc", "OK"))).toBe(2);
    expect(delta(handled("grpc.health.v1.Health", "Check", "grpc", "NOT_FOUND"))).toBe(1);
    expect(delta(handled("grpc.health.v1.Health", "Check", "grpc-web", "OK"))).toBe(1);
    expect(delta(handled("auth.v1.AuthService", "Login", "connect", "OK"))).toBe(1);
    const login = { service: "auth.v1.AuthService", method: "Login", protocol: "connect", code: "OK" };
    expect(delta(sampleKey("rpc_server_handling_seconds_count", login))).toBe(1);
    expect(delta(sampleKey("rpc_server_handling_seconds_bucket", { ...login, le: "+Inf" }))).toBe(1);
    expect(delta(sampleKey("rpc_server_handling_seconds_sum", login))).toBeGreaterThan(0);
  });

  it("tracks open streams until the client goes away", async () => {
    const health = createClient(Health, transport(server.url, "grpc"));
    const abort = new AbortController();
    const stream = health.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next();
    expect((await scrape()).get(openStreams("grpc.health.v1.Health", "Watch"))).toBe(1);
    abort.abort();
    await stream.next().catch(() => {});
    await expect.poll(async () => (await scrape()).get(openStreams("grpc.health.v1.Health", "Watch"))).toBe(0);
    expect((await scrape()).get(handled("grpc.health.v1.Health", "Watch", "grpc", "CANCELED"))).toBe(1);
  });

  it("counts a stream refused before it starts and leaves no stream open", async () => {
    const users = clients(server.url, "grpc").users;
    const err = await (async () => {
      for await (const _ of users.streamUsers({})) break;
    })().catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    const samples = await scrape();
    expect(samples.get(handled("user.v1.UserService", "StreamUsers", "grpc", "UNAUTHENTICATED"))).toBe(1);
    expect(samples.get(openStreams("user.v1.UserService", "StreamUsers"))).toBe(0);
  });
});

describe("createMetrics", () => {
  it("lets features register gauges read at scrape time", async () => {
    let watchers = 3;
    const metrics = createMetrics();
    metrics.registerGauge("watch_users_watchers", "Open WatchUsers streams.", () => watchers);
    metrics.registerGauge("change_log_lag_seconds", "Age of the newest change not yet delivered.", async () => 0.25);
    expect(parsePrometheusText(await metrics.scrape()).get("watch_users_watchers")).toBe(3);
    watchers = 5;
    const samples = parsePrometheusText(await metrics.scrape());
    expect(samples.get("watch_users_watchers")).toBe(5);
    expect(samples.get("change_log_lag_seconds")).toBe(0.25);
  });
});
