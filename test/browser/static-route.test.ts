/**
 * The built console as the service serves it: content types, caching (immutable hashed assets, revalidated
 * index.html), ETags and gzip, 404 for unknown files, no path traversal, and a clear 503 when the console
 * is not built. Plain HTTP, no browser needed.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { createStaticRoute, WEB_DIST } from "../../src/web/static-route.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/1.1 request with the path sent exactly as given (fetch would normalise `..` away). */
function request(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((done, fail) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, method: opts.method ?? "GET", headers: opts.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on("error", fail);
    req.end();
  });
}

describe("the console's static route", () => {
  let server: TestServer;
  let script: string;
  let stylesheet: string;

  beforeAll(async () => {
    await ensureWebBuilt();
    server = await startTestServer();
    const assets = readdirSync(join(WEB_DIST, "assets"));
    script = assets.find((f) => f.endsWith(".js")) ?? "";
    stylesheet = assets.find((f) => f.endsWith(".css")) ?? "";
  });
  afterAll(() => server?.close());

  it("serves index.html at / with no-cache, a CSP and an ETag that revalidates to 304", async () => {
    const page = await request(server.port, "/?transport=connect");
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(page.body.toString()).toContain(`assets/${script}`);
    const again = await request(server.port, "/", { headers: { "if-none-match": String(page.headers.etag) } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it("serves hashed assets as immutable with their content types, gzipped when asked", async () => {
    const js = await request(server.port, `/assets/${script}`, { headers: { "accept-encoding": "gzip, br" } });
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(js.headers["content-encoding"]).toBe("gzip");
    expect(js.headers.vary).toBe("Accept-Encoding");
    expect(gunzipSync(js.body).equals(readFileSync(join(WEB_DIST, "assets", script)))).toBe(true);
    const css = await request(server.port, `/assets/${stylesheet}`);
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(css.headers["content-encoding"]).toBeUndefined();
    const head = await request(server.port, `/assets/${stylesheet}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(css.body.length));
  });

  it("answers 404 for unknown files and never leaves the assets folder", async () => {
    expect((await request(server.port, "/assets/missing-abcdefgh.js")).status).toBe(404);
    for (const path of [
      "/assets/../../package.json",
      "/assets/..%2f..%2fpackage.json",
      "/assets/%2e%2e/%2e%2e/package.json",
      "/assets/..%5c..%5cpackage.json",
      "/assets/.%2e",
      "/assets/%00",
      "/assets/%E0%A4%A",
      "/assets/",
    ]) {
      const answer = await request(server.port, path);
      expect(answer.status, path).toBe(404);
      expect(answer.body.toString(), path).not.toContain("dependencies");
    }
    expect((await request(server.port, "/index.htm")).status).toBe(404);
    expect((await request(server.port, "/", { method: "POST" })).status).toBe(405);
  });

  it("serves the page over cleartext HTTP/2 too", async () => {
    const session = http2.connect(server.url);
    try {
      const status = await new Promise<number>((done, fail) => {
        const stream = session.request({ ":path": "/" });
        stream.on("response", (h) => done(Number(h[":status"])));
        stream.on("error", fail);
        stream.resume();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
  });

  it("says how to build the console when it is not built (503)", async () => {
    const empty = mkdtempSync(join(tmpdir(), "no-web-dist-"));
    const route = createStaticRoute({ dir: empty });
    const bare = http.createServer(async (req, res) => void ((await route(req, res)) || res.writeHead(404).end()));
    await new Promise<void>((done) => bare.listen(0, "127.0.0.1", done));
    try {
      const answer = await request((bare.address() as AddressInfo).port, "/");
      expect(answer.status).toBe(503);
      expect(answer.body.toString()).toContain("npm run build");
    } finally {
      bare.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("is served by the server bundle too, started from another directory", async () => {
    const proc = await startProcess({ DATABASE_URL: server.databaseUrl }, { cwd: tmpdir() });
    try {
      const index = await fetch(`${proc.url}/`);
      expect([index.status, index.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
      expect(await index.text()).toBe(readFileSync(join(WEB_DIST, "index.html"), "utf8"));
    } finally {
      killProcesses();
    }
  });
});
