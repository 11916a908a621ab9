/**
 * grpc.health.v1.Health on the real server: Check and List for the configured names over grpc-js and
 * connect-node transports, with no token; Watch streams the status and reports NOT_SERVING at shutdown.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";
import { grpcJsClient, grpcJsUnary, type TransportName, transport } from "../helpers/clients.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const names = ["", "user.v1.UserService", "auth.v1.AuthService", "events.v1.WebhookService"];

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

describe.each<TransportName>(["grpc", "connect-h1", "connect-json-h1", "grpc-web-h2"])("Check over %s", (name) => {
  it("reports SERVING for every configured name, without a token", async () => {
    const health = createClient(Health, transport(server.url, name));
    for (const service of names) expect((await health.check({ service })).status).toBe(Status.SERVING);
  });

  it("answers NOT_FOUND for an unknown name", async () => {
    const health = createClient(Health, transport(server.url, name));
    const err = await health.check({ service: "nope.v1.Nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
  });
});

describe("Check over @grpc/grpc-js", () => {
  const check = (client: grpc.Client, service: string) =>
    grpcJsUnary(client, Health, "Check", HealthCheckRequestSchema, HealthCheckResponseSchema, { service });

  it("reports SERVING, and NOT_FOUND for an unknown name", async () => {
    const client = grpcJsClient(server.port);
    try {
      for (const service of names) expect((await check(client, service)).response?.status).toBe(Status.SERVING);
      expect((await check(client, "nope.v1.Nope")).error?.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  });
});

it("lists every configured name", async () => {
  const health = createClient(Health, transport(server.url, "grpc"));
  const { statuses } = await health.list({});
  expect(Object.keys(statuses).sort()).toEqual([...names].sort());
  for (const s of Object.values(statuses)) expect(s.status).toBe(Status.SERVING);
});

it("Watch keeps a stream on an unknown name open with SERVICE_UNKNOWN", async () => {
  const health = createClient(Health, transport(server.url, "grpc"));
  const abort = new AbortController();
  const stream = health.watch({ service: "nope.v1.Nope" }, { signal: abort.signal })[Symbol.asyncIterator]();
  expect((await stream.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
  const more = stream.next();
  const outcome = await Promise.race([more.then(() => "ended"), new Promise((r) => setTimeout(() => r("open"), 200))]);
  expect(outcome).toBe("open");
  abort.abort();
  await more.catch(() => {});
});

describe.each<TransportName>(["grpc", "connect-h2"])("Watch over %s", (name) => {
  it("sends SERVING at once and NOT_SERVING when the server closes", async () => {
    const own = await startTestServer();
    const health = createClient(Health, transport(own.url, name));
    const seen: Status[] = [];
    const closed = (async () => {
      for await (const res of health.watch({ service: "user.v1.UserService" })) {
        seen.push(res.status);
        if (res.status === Status.SERVING) void own.close();
      }
    })().catch((err: unknown) => ConnectError.from(err));
    expect(await closed).toBeInstanceOf(ConnectError);
    await own.close();
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
  });
});
