/**
 * HTTP/1.0 requests without a Host header: connect-node cannot build a URL for them ("unable to determine
 * request authority") and used to reject outside any handler, which took the whole process down. They
 * are answered 400, and the server goes on serving.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/** Sends `request` on a fresh TCP connection and returns everything the server wrote before closing. */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((done, fail) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", fail);
    socket.on("close", () => done(Buffer.concat(chunks).toString("latin1")));
    socket.end(request);
  });
}

describe("an HTTP/1.0 request without Host", () => {
  it.each([
    ["a Connect server stream", "/user.v1.UserService/StreamUsers", "application/connect+json"],
    ["a gzip-encoded Connect unary call", "/user.v1.UserService/GetUser", "application/json"],
  ])("to %s is answered 400 and the server keeps serving", async (_, path, type) => {
    const body = "{}";
    const encoding = type === "application/json" ? "Content-Encoding: gzip\r\n" : "";
    const answer = await exchange(
      server.port,
      `POST ${path} HTTP/1.0\r\nContent-Type: ${type}\r\n${encoding}Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    expect(answer).toMatch(/^HTTP\/1\.[01] 400 /);
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
