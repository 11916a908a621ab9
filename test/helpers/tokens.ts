/**
 * Forged access tokens: what an attacker or a misconfigured issuer would send. Signed with the test
 * servers' JWT_SECRET unless told otherwise, so only the property under test is wrong.
 */
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { JWT_SECRET } from "./server.ts";

/** The claims the service issues (see src/auth/tokens.ts), all valid for an hour, in a session of their own. */
export function validClaims(sub: string, role: "ROLE_ADMIN" | "ROLE_USER" = "ROLE_USER"): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub,
    role,
    iss: "user-service",
    aud: "user-service",
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
    sid: randomUUID(),
  };
}

/** The JOSE `typ` of the service's access tokens (RFC 9068). */
export const ACCESS_TOKEN_TYP = "at+jwt";

/**
 * Signs `claims` (HS256 with JWT_SECRET by default) under the header `typ: at+jwt` unless `typ` says
 * otherwise (undefined leaves it out); a claim set to undefined is left out.
 */
export function forge(
  claims: Record<string, unknown>,
  opts: { secret?: string; algorithm?: jwt.Algorithm; typ?: string | undefined } = {},
): string {
  const payload = Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined));
  // jsonwebtoken keeps a given `iat`, adds one when absent unless noTimestamp.
  const algorithm = opts.algorithm ?? "HS256";
  const typ = "typ" in opts ? opts.typ : ACCESS_TOKEN_TYP;
  return jwt.sign(payload, opts.secret ?? JWT_SECRET, {
    algorithm,
    noTimestamp: !("iat" in payload),
    // jsonwebtoken adds typ "JWT" unless the header names one; an explicit undefined drops it.
    header: { alg: algorithm, typ },
  });
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** An unsigned token (`alg: none`), with an empty signature part. */
export function unsigned(claims: Record<string, unknown>): string {
  return `${b64({ alg: "none", typ: ACCESS_TOKEN_TYP })}.${b64(claims)}.`;
}

/** `token` with its payload replaced by `claims`, keeping the original header and signature. */
export function withPayload(token: string, claims: Record<string, unknown>): string {
  const [header, , signature] = token.split(".");
  return `${header}.${b64(claims)}.${signature}`;
}

/** The payload of a token, decoded without verification. */
export function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString()) as Record<string, unknown>;
}
