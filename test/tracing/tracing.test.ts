/**
 * Tracing end to end: a real server exporting to an OTLP/HTTP receiver run by the test. A call carrying a
 * `traceparent` yields a server span in the caller's trace with database spans as its children (unary over
 * gRPC's fast path and Connect, and a server stream); a server without an OTLP endpoint loads no tracer and
 * leaves pg unpatched; a collector that never answers cannot hold up shutdown; the server bundle (a real
 * process) traces its bundled MikroORM's queries as well. The "off" test runs first
 * on purpose: once patched, pg stays patched in a process.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { tracingActive } from "../../src/ops/tracing.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./otlp-receiver.ts";

const SERVER = 2;
const SPAN_ERROR = 2;

/** A caller's span context, and its `traceparent` header. */
function callerSpan() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

const isWrapped = (fn: unknown) => typeof fn === "function" && "__wrapped" in fn;

describe("tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)", () => {
  it("adds no interceptor, loads no tracer and leaves pg alone", async () => {
    const server = await startTestServer();
    try {
      expect(tracingActive()).toBe(false);
      expect(isWrapped(pg.Client.prototype.query)).toBe(false);
      // What the OpenTelemetry API registers its globals under: nothing did.
      expect(Reflect.get(globalThis, Symbol.for("opentelemetry.js.api.1"))).toBeUndefined();
      const res = await createClient(AuthService, createGrpcTransport({ baseUrl: server.url })).login(ADMIN, {
        headers: { traceparent: callerSpan().traceparent },
      });
      expect(res.tokens?.accessToken).toBeTruthy();
      expect(isWrapped(pg.Client.prototype.query)).toBe(false);
    } finally {
      await server.close();
    }
  });
});

describe("tracing on", () => {
  let receiver: OtlpReceiver;
  let server: TestServer;
  const login = callerSpan();
  const unauthenticated = callerSpan();
  const stream = callerSpan();
  let span: (traceId: string) => ReceivedSpan;
  let children: (of: ReceivedSpan) => ReceivedSpan[];

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    server = await startTestServer({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: "users-under-test",
    });
    expect(tracingActive()).toBe(true);
    expect(isWrapped(pg.Client.prototype.query)).toBe(true);

    const grpcAuth = createClient(AuthService, createGrpcTransport({ baseUrl: server.url }));
    const res = await grpcAuth.login(ADMIN, { headers: { traceparent: login.traceparent } });
    const token = res.tokens?.accessToken ?? "";

    const connectUsers: Client<typeof UserService> = createClient(
      UserService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const denied = await connectUsers
      .getUser(
        { userId: "00000000-0000-4000-8000-000000000000" },
        { headers: { traceparent: unauthenticated.traceparent } },
      )
      .catch((e: unknown) => ConnectError.from(e));
    expect((denied as ConnectError).code).toBe(Code.Unauthenticated);

    const grpcUsers = createClient(UserService, createGrpcTransport({ baseUrl: server.url }));
    const batches = grpcUsers.streamUsers(
      {},
      { headers: { traceparent: stream.traceparent, authorization: `Bearer ${token}` } },
    );
    let users = 0;
    for await (const batch of batches) users += batch.users.length;
    expect(users).toBeGreaterThan(0);

    // Shutting down flushes the batch processor: every span is at the receiver when close() resolves.
    await server.close();
    expect(tracingActive()).toBe(false);
    span = (traceId) => {
      const found = receiver.spans.filter((s) => s.traceId === traceId && s.kind === SERVER);
      expect(found, `one server span in trace ${traceId}`).toHaveLength(1);
      return found[0];
    };
    children = (of) => receiver.spans.filter((s) => s.parentSpanId === of.spanId);
  });

  afterAll(async () => {
    await server?.close();
    await receiver?.close();
  });

  it("continues the caller's trace with a server span of the call (gRPC unary, on the fast path)", () => {
    const s = span(login.traceId);
    expect(s.parentSpanId).toBe(login.spanId);
    expect(s.name).toBe("auth.v1.AuthService/Login");
    expect(s.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "auth.v1.AuthService",
      "rpc.method": "Login",
      "rpc.protocol": "grpc",
      "rpc.grpc.status_code": 0,
    });
    expect(s.resource["service.name"]).toBe("users-under-test");
    expect(receiver.contentTypes.every((t) => t === "application/x-protobuf")).toBe(true);
  });

  it("makes database spans children of the call's span, from the pool and from MikroORM alike", () => {
    const queries = children(span(login.traceId)).filter((s) => s.attributes["db.system.name"] === "postgresql");
    const texts = queries.map((s) => String(s.attributes["db.query.text"] ?? ""));
    expect(
      texts.some((t) => t.includes("login_failures")),
      "the lockout query of the pg pool",
    ).toBe(true);
    expect(
      texts.some((t) => t.includes('"refresh_tokens"')),
      "the session insert of MikroORM",
    ).toBe(true);
    expect(queries.every((s) => s.traceId === login.traceId && s.scope === "@opentelemetry/instrumentation-pg")).toBe(
      true,
    );
  });

  it("records no values in query texts, though MikroORM inlines them", () => {
    const texts = receiver.spans.map((s) => s.attributes["db.query.text"]).filter((t) => typeof t === "string");
    expect(texts.length).toBeGreaterThan(0);
    for (const text of texts) expect(text).not.toMatch(/'|@example\.com/);
  });

  it("traces only queries made for a call, not background work (health probes, change feed)", () => {
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));
    // A new pooled connection nests pg.connect inside pg-pool.connect: walk up to the first non-pg span.
    const callOf = (s: ReceivedSpan | undefined): ReceivedSpan | undefined =>
      s?.scope === "@opentelemetry/instrumentation-pg" ? callOf(byId.get(s.parentSpanId)) : s;
    const queries = receiver.spans.filter((s) => s.scope === "@opentelemetry/instrumentation-pg");
    expect(queries.every((s) => callOf(s)?.kind === SERVER)).toBe(true);
  });

  it("reports a Connect error code, and does not mark the caller's mistakes as server errors", () => {
    const s = span(unauthenticated.traceId);
    expect(s.parentSpanId).toBe(unauthenticated.spanId);
    expect(s.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.method": "GetUser",
      "rpc.connect_rpc.error_code": "unauthenticated",
    });
    expect(s.attributes["rpc.grpc.status_code"]).toBeUndefined();
    expect(s.statusCode).not.toBe(SPAN_ERROR);
  });

  it("keeps the span active while a server stream is read, so its queries are children too", () => {
    const s = span(stream.traceId);
    expect(s.name).toBe("user.v1.UserService/StreamUsers");
    expect(s.attributes["rpc.grpc.status_code"]).toBe(0);
    expect(children(s).some((c) => String(c.attributes["db.query.text"]).includes("from users"))).toBe(true);
  });
});

describe("tracing in the server bundle (as npm start and the image run it)", () => {
  it("traces calls and the queries of the pool and of MikroORM, though both are bundled", async () => {
    const receiver = await startOtlpReceiver();
    try {
      const proc = await startProcess({
        DATABASE_URL: await createTestDatabase(),
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      });
      const caller = callerSpan();
      await createClient(AuthService, createGrpcTransport({ baseUrl: proc.url })).login(ADMIN, {
        headers: { traceparent: caller.traceparent },
      });
      // SIGTERM: the graceful shutdown flushes the spans before the process exits.
      proc.child.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      const call = receiver.spans.find((s) => s.traceId === caller.traceId && s.kind === SERVER);
      expect(call?.name).toBe("auth.v1.AuthService/Login");
      const texts = receiver.spans
        .filter((s) => s.parentSpanId === call?.spanId && s.scope === "@opentelemetry/instrumentation-pg")
        .map((s) => String(s.attributes["db.query.text"] ?? ""));
      expect(texts.some((t) => t.includes("login_failures"))).toBe(true);
      expect(texts.some((t) => t.includes('"refresh_tokens"'))).toBe(true);
    } finally {
      killProcesses();
      await receiver.close();
    }
  });
});

describe("tracing to a collector that never answers", () => {
  it("does not hold up shutdown: unsent spans are dropped after a second, with a warning", async () => {
    const silent = createServer(() => {});
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    const server = await startTestServer({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
    });
    try {
      await createClient(AuthService, createGrpcTransport({ baseUrl: server.url })).login(ADMIN);
      const started = performance.now();
      await server.close();
      expect(performance.now() - started).toBeLessThan(2500);
      expect(server.logs.some((l) => String(l.msg).includes("buffered spans not exported"))).toBe(true);
      expect(tracingActive()).toBe(false);
    } finally {
      await server.close();
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe("tracing configuration", () => {
  const base = { JWT_SECRET: "x".repeat(32) };
  const errorOf = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error("no ConfigError");
  };

  it("is off without an endpoint, and with OTEL_SDK_DISABLED", () => {
    expect(loadConfig(base).tracing).toBeUndefined();
    expect(
      loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).tracing,
    ).toBeUndefined();
  });

  it("derives the traces URL from the base endpoint, or takes the signal's own", () => {
    expect(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" }).tracing?.tracesUrl).toBe(
      "http://c:4318/v1/traces",
    );
    expect(loadConfig({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: "https://c/otlp" }).tracing?.tracesUrl).toBe(
      "https://c/otlp/v1/traces",
    );
    expect(loadConfig({ ...base, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/custom" }).tracing?.tracesUrl).toBe(
      "http://c:4318/custom",
    );
  });

  it("parses headers and sampler", () => {
    const t = loadConfig({
      ...base,
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
      OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=a%20b, Team=users",
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.25",
    }).tracing;
    expect(t).toMatchObject({
      headers: { "x-api-key": "a b", team: "users" },
      sampler: "parentbased_traceidratio",
      samplerRatio: 0.25,
    });
  });

  it("names the variable at fault, and never echoes a header value", () => {
    expect(errorOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }).variable).toBe("OTEL_EXPORTER_OTLP_ENDPOINT");
    expect(errorOf({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }).variable).toBe("OTEL_EXPORTER_OTLP_PROTOCOL");
    expect(errorOf({ OTEL_TRACES_SAMPLER: "sometimes" }).variable).toBe("OTEL_TRACES_SAMPLER");
    expect(errorOf({ OTEL_TRACES_SAMPLER_ARG: "1.5" }).variable).toBe("OTEL_TRACES_SAMPLER_ARG");
    const headers = errorOf({ OTEL_EXPORTER_OTLP_HEADERS: "secret-token-value" });
    expect(headers.variable).toBe("OTEL_EXPORTER_OTLP_HEADERS");
    expect(headers.message).not.toContain("secret-token-value");
  });
});
