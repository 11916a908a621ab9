/**
 * Serves the built web console (web/dist) at `/` and its files at `/assets/*`. Vite names every asset
 * after a hash of its content, so assets are cached for a year as immutable and index.html (which names
 * the current ones) is revalidated on every load: a new build is picked up at once, an unchanged one costs
 * a 304. Asset names are a flat, checked character set, so no request can reach outside the assets folder.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import type { HttpRoute } from "../transport/server.ts";

/** Where the console is built to: web/dist of this checkout. */
export const WEB_DIST = resolve(import.meta.dirname, "../../web/dist");

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

const IMMUTABLE = "public, max-age=31536000, immutable";
// Vite's default asset names: name-<8 base64url characters of the content hash>.ext
const HASHED = /-[A-Za-z0-9_-]{8}\.[a-z0-9]+$/;
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

// The console may call a service on another origin (?api=), so connect-src allows any http(s) origin;
// everything else is the page's own, and no one may frame an admin console.
const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'self'; connect-src 'self' http: https:; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};

const NOT_BUILT =
  "The web console is not built. Run `npm run build` (npm start and npm test build it when it is missing).\n";

interface Loaded {
  mtimeMs: number;
  body: Buffer;
  gzip: Buffer | undefined;
  etag: string;
}

/** What a request path names: a file of the build, or nothing of ours (undefined), or nothing at all (null). */
function fileOf(path: string): string | null | undefined {
  if (path === "/" || path === "/index.html") return "index.html";
  if (!path.startsWith("/assets/")) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(path.slice("/assets/".length));
  } catch {
    return null;
  }
  return SAFE_NAME.test(name) && !name.includes("..") ? `assets/${name}` : null;
}

function text(res: Parameters<HttpRoute>[1], status: number, body: string, headers: Record<string, string> = {}): true {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(body);
  return true;
}

/** The route; `dir` is the build to serve (WEB_DIST by default). */
export function createStaticRoute(opts: { dir?: string } = {}): HttpRoute {
  const dir = resolve(opts.dir ?? WEB_DIST);
  // Files are small and few; keeping them (and their gzip) saves a read and a compression per request.
  const cache = new Map<string, Loaded>();

  async function load(file: string): Promise<Loaded | undefined> {
    const full = join(dir, file);
    const info = await stat(full).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const known = cache.get(full);
    if (known && known.mtimeMs === info.mtimeMs) return known;
    const body = await readFile(full);
    const compressible = /^(text\/|application\/json|image\/svg)/.test(contentTypes[extname(file)] ?? "");
    const gzip = compressible && body.length > 1024 ? gzipSync(body) : undefined;
    const loaded = {
      mtimeMs: info.mtimeMs,
      body,
      gzip,
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
    };
    cache.set(full, loaded);
    return loaded;
  }

  return async (req, res) => {
    const file = fileOf((req.url ?? "").split("?", 1)[0] ?? "");
    if (file === undefined) return false;
    if (req.method !== "GET" && req.method !== "HEAD")
      return text(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
    if (file === null) return text(res, 404, "not found\n");
    const loaded = await load(file);
    if (!loaded) return file === "index.html" ? text(res, 503, NOT_BUILT) : text(res, 404, "not found\n");

    const isPage = file === "index.html";
    const gzip = loaded.gzip !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    // Each encoding is its own representation, so each gets its own (strong) ETag.
    const etag = gzip ? `${loaded.etag.slice(0, -1)}-gz"` : loaded.etag;
    const headers: Record<string, string> = {
      "content-type": contentTypes[extname(file)] ?? "application/octet-stream",
      "cache-control": !isPage && HASHED.test(file) ? IMMUTABLE : "no-cache",
      etag,
      "x-content-type-options": "nosniff",
      ...(isPage ? PAGE_HEADERS : {}),
    };
    if (loaded.gzip) headers.vary = "Accept-Encoding";
    const ifNoneMatch = String(req.headers["if-none-match"] ?? "");
    if (ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === etag)) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    const body = gzip ? (loaded.gzip as Buffer) : loaded.body;
    if (gzip) headers["content-encoding"] = "gzip";
    res.writeHead(200, { ...headers, "content-length": String(body.length) });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  };
}
