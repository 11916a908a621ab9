/**
 * CORS for browsers (connect-web, gRPC-web): with CORS_ALLOWED_ORIGINS set, an allowed origin's
 * preflight is answered with the methods and headers a Connect/gRPC-web call needs (Authorization
 * included) and responses expose the status headers; any other origin gets no CORS headers at all; and
 * with the variable empty, nobody does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const allowed = "https://app.example.com";
const alsoAllowed = "https://admin.example.com";
const stranger = "https://evil.example.net";

let withCors: TestServer;
let withoutCors: TestServer;

beforeAll(async () => {
  [withCors, withoutCors] = await Promise.all([
    startTestServer({ CORS_ALLOWED_ORIGINS: `${allowed}, ${alsoAllowed}` }),
    startTestServer({ CORS_ALLOWED_ORIGINS: "" }),
  ]);
});
afterAll(async () => {
  await Promise.all([withCors?.close(), withoutCors?.close()]);
});

const path = "/user.v1.UserService/GetUser";

function preflight(
  server: TestServer,
  origin: string,
  requestHeaders = "authorization, content-type, connect-protocol-version, x-grpc-web, x-user-agent",
) {
  return fetch(`${server.url}${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": requestHeaders },
  });
}

function call(server: TestServer, origin: string) {
  return fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { origin, "content-type": "application/json", "connect-protocol-version": "1" },
    body: JSON.stringify({ userId: "00000000-0000-4000-8000-000000000000" }),
  });
}

const list = (v: string | null) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");

function corsHeaders(res: Response): string[] {
  return [...res.headers.keys()].filter((k) => k.startsWith("access-control-"));
}

describe("with CORS_ALLOWED_ORIGINS set", () => {
  it.each([allowed, alsoAllowed])("answers a preflight from %s with the allow headers", async (origin) => {
    const res = await preflight(withCors, origin);
    expect(res.status).toBeGreaterThanOrEqual(200);
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get("access-control-allow-origin")).toBe(origin);
    expect(list(res.headers.get("access-control-allow-methods"))).toContain("post");
    const headers = list(res.headers.get("access-control-allow-headers"));
    expect(headers).toEqual(
      expect.arrayContaining(["authorization", "content-type", "connect-protocol-version", "x-grpc-web"]),
    );
    expect(res.headers.get("vary")?.toLowerCase()).toContain("origin");
  });

  it("exposes the gRPC and Connect status headers on an allowed origin's responses", async () => {
    const res = await call(withCors, allowed);
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBe(allowed);
    expect(list(res.headers.get("access-control-expose-headers"))).toEqual(
      expect.arrayContaining(["grpc-status", "grpc-message", "grpc-status-details-bin"]),
    );
  });

  it("gives a disallowed origin no CORS headers, on preflight or call", async () => {
    const pre = await preflight(withCors, stranger);
    expect(corsHeaders(pre)).toEqual([]);
    const res = await call(withCors, stranger);
    expect(corsHeaders(res)).toEqual([]);
  });

  it("matches origins exactly (no prefix or suffix tricks)", async () => {
    for (const origin of [`${allowed}.evil.net`, allowed.replace("https", "http"), `${allowed}:8443`]) {
      const pre = await preflight(withCors, origin);
      expect(corsHeaders(pre), origin).toEqual([]);
    }
  });
});

describe("with CORS_ALLOWED_ORIGINS empty", () => {
  it("sends no CORS headers to anyone", async () => {
    for (const origin of [allowed, stranger]) {
      expect(corsHeaders(await preflight(withoutCors, origin))).toEqual([]);
      expect(corsHeaders(await call(withoutCors, origin))).toEqual([]);
    }
  });
});
