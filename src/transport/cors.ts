/**
 * CORS for browsers on the origins in CORS_ALLOWED_ORIGINS (none = no CORS headers at all), with
 * `Authorization` allowed and the gRPC/Connect status headers exposed.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { cors } from "@connectrpc/connect";

const allowHeaders = [...cors.allowedHeaders, "Authorization", "X-Request-Id"].join(", ");
const exposeHeaders = [...cors.exposedHeaders, "X-Request-Id"].join(", ");
const allowMethods = cors.allowedMethods.join(", ");

/**
 * Adds CORS headers for an allowed origin. Returns true when the request was a preflight and has been
 * answered.
 */
export function createCors(origins: readonly string[]) {
  const allowed = new Set(origins);
  const any = allowed.has("*");
  return (req: IncomingMessage | Http2ServerRequest, res: ServerResponse): boolean => {
    const origin = req.headers.origin;
    if (allowed.size === 0 || typeof origin !== "string" || !(any || allowed.has(origin))) return false;
    res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
    res.setHeader("Vary", "Origin");
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
      res.setHeader("Access-Control-Allow-Methods", allowMethods);
      res.setHeader("Access-Control-Allow-Headers", allowHeaders);
      res.setHeader("Access-Control-Max-Age", "7200");
      res.writeHead(204);
      res.end();
      return true;
    }
    res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
    return false;
  };
}
