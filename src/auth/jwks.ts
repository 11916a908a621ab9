/**
 * `GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517 JWK Set), so other
 * services check our tokens without sharing a secret. Only asymmetric keys are published; with HS256 the
 * path is not served at all (404), since a shared secret must never leave the service.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { SigningKeys } from "./signing-keys.ts";

/** The path the JWK Set is served at (the de facto standard of OIDC providers). */
export const JWKS_PATH = "/.well-known/jwks.json";

// Five minutes: short enough that a verifier sees a newly added key soon after a rotation, long enough
// that verifiers do not fetch it on every token. Verifiers refetch early on an unknown `kid` anyway.
const CACHE_CONTROL = "public, max-age=300";

/**
 * A plain HTTP route serving the JWK Set with its media type (RFC 7517 §8.5), a cache lifetime and an
 * ETag; returns false for other paths, and for this one when there is nothing to publish.
 */
export function createJwksRoute(keys: SigningKeys) {
  const body = JSON.stringify({ keys: keys.publicJwks });
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  return (req: IncomingMessage | Http2ServerRequest, res: ServerResponse): boolean => {
    if (keys.publicJwks.length === 0 || (req.url ?? "").split("?", 1)[0] !== JWKS_PATH) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
      res.end("method not allowed\n");
      return true;
    }
    const headers = {
      "content-type": "application/jwk-set+json",
      "cache-control": CACHE_CONTROL,
      etag,
      "x-content-type-options": "nosniff",
    };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, { ...headers, "content-length": Buffer.byteLength(body) });
    res.end(req.method === "HEAD" ? undefined : body);
    return true;
  };
}
