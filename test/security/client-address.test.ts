/**
 * Which address a call is counted against. The resolver and the key function directly (a connection from
 * ::1 is a single address, so /64 grouping needs the function itself), then over the wire with
 * RATE_LIMIT_PER_SECOND=1 and RATE_LIMIT_BURST=3 (3 calls per 3 s window): two calls share a bucket when
 * the burst spent under one address leaves the other RATE_LIMITED. X-Forwarded-For counts only from a
 * trusted peer, is read from the right skipping trusted proxies, ignores what the client put left of
 * that, groups IPv6 clients by /64, and never turns garbage into a key.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LogoutRequestSchema } from "../../gen/auth/v1/auth_service_pb.js";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { createClientAddress, parseAddress, rateLimitKey } from "../../src/interceptors/client-address.ts";
import { clients, failure } from "../helpers/clients.ts";
import { grpcFrame } from "../helpers/raw.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { expectRetryLater } from "./expect.ts";

const LIMITS = { RATE_LIMIT_PER_SECOND: "1", RATE_LIMIT_BURST: "3" };

const trustedOf = (value: string) => loadConfig({ TRUST_PROXY: value }).trustedProxies;

describe("the client address and its rate-limit key", () => {
  it("parses X-Forwarded-For entries: ports, brackets, zones, IPv4-mapped IPv6; garbage is undefined", () => {
    expect(parseAddress(" 203.0.113.7 ")).toBe("203.0.113.7");
    expect(parseAddress("203.0.113.7:4711")).toBe("203.0.113.7");
    expect(parseAddress("[2001:DB8::1]:443")).toBe("2001:db8::1");
    expect(parseAddress("[2001:db8::1]")).toBe("2001:db8::1");
    expect(parseAddress("fe80::1%eth0")).toBe("fe80::1");
    expect(parseAddress("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(parseAddress("::ffff:cb00:7107")).toBe("203.0.113.7");
    for (const bad of ["", "unknown", "_hidden", "203.0.113.300", "1.2.3.04", "2001:db8::g", "[1.2.3.4", "a, b"]) {
      expect(parseAddress(bad), bad).toBeUndefined();
    }
  });

  it("keys IPv4 per address and IPv6 per /64", () => {
    expect(rateLimitKey("203.0.113.7")).toBe("203.0.113.7");
    expect(rateLimitKey("2001:db8:0:1::1")).toBe("2001:db8:0:1::/64");
    expect(rateLimitKey("2001:0db8:0000:0001:ffff:ffff:ffff:ffff")).toBe("2001:db8:0:1::/64");
    expect(rateLimitKey("2001:db8:0:2::1")).toBe("2001:db8:0:2::/64");
    expect(rateLimitKey("::1")).toBe("0:0:0:0::/64");
    expect(rateLimitKey("2001:db8::")).toBe("2001:db8:0:0::/64");
    expect(rateLimitKey("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
  });

  it("without trusted proxies, is the peer whatever the header says", () => {
    const resolve = createClientAddress(trustedOf("false"));
    expect(resolve("127.0.0.1", "203.0.113.7")).toBe("127.0.0.1");
    expect(resolve("::ffff:192.0.2.1", undefined)).toBe("192.0.2.1");
  });

  it("reads X-Forwarded-For from the right, skipping trusted proxies, only from a trusted peer", () => {
    const resolve = createClientAddress(trustedOf("10.0.0.0/8, 2001:db8:ffff::/48"));
    expect(resolve("192.0.2.1", "203.0.113.7"), "untrusted peer").toBe("192.0.2.1");
    expect(resolve("10.0.0.1", "203.0.113.7")).toBe("203.0.113.7");
    expect(resolve("::ffff:10.0.0.1", "203.0.113.7"), "IPv4-mapped trusted peer").toBe("203.0.113.7");
    expect(resolve("10.0.0.1", "198.51.100.1, 203.0.113.7, 10.9.9.9"), "spoofed left entry").toBe("203.0.113.7");
    expect(resolve("2001:db8:ffff::1", "2001:db8:1::5, [2001:db8:ffff::2]:80")).toBe("2001:db8:1::5");
    expect(resolve("10.0.0.1", "10.1.1.1, 10.2.2.2"), "all trusted: the leftmost").toBe("10.1.1.1");
    expect(resolve("10.0.0.1", "203.0.113.7, garbage, 10.2.2.2"), "garbage ends the walk").toBe("10.2.2.2");
    expect(resolve("10.0.0.1", "203.0.113.7, unknown"), "garbage next to the peer").toBe("10.0.0.1");
    expect(resolve("10.0.0.1", "203.0.113.7,"), "an empty entry is garbage").toBe("10.0.0.1");
    expect(resolve("10.0.0.1", ""), "empty header").toBe("10.0.0.1");
  });

  it("TRUST_PROXY=true is loopback; a bad value stops start-up naming the variable", () => {
    const resolve = createClientAddress(trustedOf("true"));
    expect(resolve("127.0.0.1", "203.0.113.7")).toBe("203.0.113.7");
    expect(resolve("::1", "203.0.113.7")).toBe("203.0.113.7");
    expect(resolve("127.0.0.2", "203.0.113.7")).toBe("127.0.0.2");
    expect(trustedOf("192.0.2.1")).toEqual([{ address: "192.0.2.1", prefix: 32, family: "ipv4" }]);
    for (const bad of [
      "10.0.0.0/33",
      "fd00::/129",
      "10.0.0.0/8,",
      "proxy.example.com",
      "10.0.0.0/8/1",
      "fe80::1%eth0",
    ]) {
      expect(() => trustedOf(bad), bad).toThrow(ConfigError);
      expect(() => trustedOf(bad), bad).toThrow(/^TRUST_PROXY: /);
    }
  });
});

/** A cheap public call (Logout of an unknown token always answers OK), with X-Forwarded-For if given. */
function publicCall(server: TestServer, forwardedFor?: string) {
  const headers: Record<string, string> = forwardedFor ? { "x-forwarded-for": forwardedFor } : {};
  return clients(server.url, "grpc").auth.logout({ refreshToken: "no-such-token" }, { headers });
}

/** Spends the burst of 3 as `a`, then expects `b` to be limited (same bucket) or not (separate buckets). */
async function expectBucket(server: TestServer, a: string | undefined, b: string | undefined, shared: boolean) {
  for (let i = 0; i < 3; i++) await publicCall(server, a);
  if (shared) await expectRetryLater(publicCall(server, b), "RATE_LIMITED");
  else await publicCall(server, b);
}

describe("over the wire, a peer that is not a trusted proxy (TRUST_PROXY=10.0.0.0/8)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...LIMITS, TRUST_PROXY: "10.0.0.0/8" });
  });
  afterAll(() => server?.close());

  it("has its X-Forwarded-For ignored: every claimed address shares the peer's bucket", async () => {
    await expectBucket(server, "203.0.113.1", "203.0.113.2", true);
    await expectRetryLater(publicCall(server), "RATE_LIMITED");
  });
});

describe("over the wire, behind a trusted proxy (TRUST_PROXY=127.0.0.1/32,10.0.0.0/8)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...LIMITS, TRUST_PROXY: "127.0.0.1/32, 10.0.0.0/8" });
  });
  afterAll(() => server?.close());

  it("gives each client address its own bucket", async () => {
    await expectBucket(server, "203.0.113.10", "203.0.113.11", false);
    await expectRetryLater(publicCall(server, "203.0.113.10"), "RATE_LIMITED");
  });

  it("skips trusted proxies from the right and ignores what the client put left of its address", async () => {
    for (let i = 0; i < 3; i++) await publicCall(server, `198.51.100.${i}, 203.0.113.20, 10.1.2.3`);
    await expectRetryLater(publicCall(server, "198.51.100.99, 203.0.113.20"), "RATE_LIMITED");
    await expectRetryLater(publicCall(server, "203.0.113.20:5555"), "RATE_LIMITED");
    await expectRetryLater(publicCall(server, "::ffff:203.0.113.20"), "RATE_LIMITED");
  });

  it("groups IPv6 clients by /64: one /64 shares a bucket, two /64s do not", async () => {
    await expectBucket(server, "2001:db8:aa:1::1", "[2001:db8:aa:1:ffff:ffff:ffff:fffe]:4711", true);
    await publicCall(server, "2001:db8:aa:2::1");
  });

  it("never keys on garbage: the walk stops there and the last good address (the proxy) is counted", async () => {
    await expectBucket(server, "203.0.113.30, unknown", "203.0.113.31, not-an-address", true);
    await expectRetryLater(publicCall(server), "RATE_LIMITED");
    await publicCall(server, "203.0.113.30");
  });

  it("reads several X-Forwarded-For headers as one list, over HTTP/1.1 and HTTP/2", async () => {
    const h1 = () => connectH1Logout(server.url, ["198.51.100.50", "203.0.113.40"]);
    for (let i = 0; i < 3; i++) expect(await h1()).toBe(200);
    expect(await h1()).toBe(429);
    await expectRetryLater(publicCall(server, "203.0.113.40"), "RATE_LIMITED");
    const h2 = () => grpcH2Logout(server.url, ["198.51.100.51", "203.0.113.41"]);
    for (let i = 0; i < 3; i++) expect(await h2()).toBe(0); // grpc-status 0: OK
    expect(await h2()).toBe(Code.ResourceExhausted);
    const f = await failure(publicCall(server, "203.0.113.41"));
    expect(f.reason).toBe("RATE_LIMITED");
  });
});

/** Logout over Connect JSON on HTTP/1.1 with one X-Forwarded-For header line per entry; the HTTP status. */
function connectH1Logout(baseUrl: string, forwardedFor: string[]): Promise<number> {
  return new Promise((done, fail) => {
    const req = http.request(
      `${baseUrl}/auth.v1.AuthService/Logout`,
      { method: "POST", headers: { "content-type": "application/json", "x-forwarded-for": forwardedFor } },
      (res) => {
        res.resume();
        res.on("end", () => done(res.statusCode ?? 0));
      },
    );
    req.on("error", fail);
    req.end(JSON.stringify({ refreshToken: "no-such-token" }));
  });
}

/** Logout over gRPC on HTTP/2 with one X-Forwarded-For header field per entry; the grpc-status. */
function grpcH2Logout(baseUrl: string, forwardedFor: string[]): Promise<number> {
  return new Promise((done, fail) => {
    const session = http2.connect(baseUrl);
    session.on("error", fail);
    const req = session.request({
      ":method": "POST",
      ":path": "/auth.v1.AuthService/Logout",
      "content-type": "application/grpc",
      te: "trailers",
      "x-forwarded-for": forwardedFor,
    });
    let status = Number.NaN;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
    };
    req.on("response", take);
    req.on("trailers", take);
    req.resume();
    req.on("error", fail);
    req.on("end", () => {
      session.close();
      done(status);
    });
    req.end(grpcFrame(toBinary(LogoutRequestSchema, create(LogoutRequestSchema, { refreshToken: "no-such-token" }))));
  });
}
