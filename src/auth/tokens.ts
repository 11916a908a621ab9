/**
 * Access tokens (JWT: iss, aud, exp, iat, sub, role and jti required and checked; the algorithm pinned to
 * the key the token's `kid` names, see signing-keys.ts) and opaque refresh tokens (random, stored only as
 * SHA-256 hashes). Every rejection carries the same message, so a forger learns nothing about which check
 * failed (RFC 8725 §2.8, OWASP ASVS V3.5).
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { ServiceError } from "../errors.ts";
import type { SigningKeys } from "./signing-keys.ts";

/** What signing and verifying need. */
export interface TokenOptions {
  keys: SigningKeys;
  issuer: string;
  audience: string;
  accessTokenTtlMs: number;
}

/** The verified claims of an access token. */
export interface TokenClaims {
  userId: string;
  admin: boolean;
  tokenId: string;
  /** Issue time in milliseconds (the private `iat_ms` claim: `iat` has only seconds, and revocation needs better). */
  issuedAtMs: number;
  expiresAtMs: number;
  /** The session (refresh-token family) the token was issued in (`sid`); Logout and reuse revoke it. */
  sessionId: string | undefined;
}

/** An issued access token. */
export interface AccessToken {
  token: string;
  expiresAt: Date;
}

/** The one message of every rejected access token, whatever the reason. */
export const INVALID_TOKEN_MESSAGE = "invalid or revoked token";

/** UNAUTHENTICATED with the one message that says nothing about why. */
export const invalidToken = () => new ServiceError("UNAUTHENTICATED", INVALID_TOKEN_MESSAGE);

// How far in the future `iat` may be: replicas' clocks differ a little. Beyond that, a token "issued later"
// would outlive a revocation (tokens issued before tokens_valid_after die), so it is refused.
const MAX_CLOCK_SKEW_S = 5;

// User ids are UUIDs; anything else is refused here, before it reaches a uuid column as a query parameter.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function claimsOf(payload: jwt.JwtPayload | string): TokenClaims | undefined {
  if (
    typeof payload !== "object" ||
    typeof payload.exp !== "number" ||
    typeof payload.iat !== "number" ||
    typeof payload.sub !== "string" ||
    !UUID.test(payload.sub) ||
    typeof payload.jti !== "string" ||
    (payload.role !== "ROLE_ADMIN" && payload.role !== "ROLE_USER") ||
    payload.iat > Date.now() / 1000 + MAX_CLOCK_SKEW_S
  ) {
    return undefined;
  }
  const iatMs =
    typeof payload.iat_ms === "number" && Math.floor(payload.iat_ms / 1000) === payload.iat
      ? payload.iat_ms
      : payload.iat * 1000;
  return {
    userId: payload.sub,
    admin: payload.role === "ROLE_ADMIN",
    tokenId: payload.jti,
    issuedAtMs: iatMs,
    expiresAtMs: payload.exp * 1000,
    sessionId: typeof payload.sid === "string" && UUID.test(payload.sid) ? payload.sid : undefined,
  };
}

/** Signs and verifies access tokens. */
export function createAccessTokens(opts: TokenOptions) {
  const { signing } = opts.keys;
  return {
    /** An access token; `sessionId` (the refresh-token family) lets Logout revoke it. */
    issue(userId: string, admin: boolean, sessionId?: string, now = Date.now()): AccessToken {
      const iat = Math.floor(now / 1000);
      const exp = Math.floor((now + opts.accessTokenTtlMs) / 1000);
      const token = jwt.sign(
        {
          sub: userId,
          role: admin ? "ROLE_ADMIN" : "ROLE_USER",
          iat,
          exp,
          jti: randomUUID(),
          iat_ms: now,
          ...(sessionId ? { sid: sessionId } : {}),
        },
        signing.key,
        {
          algorithm: signing.algorithm,
          issuer: opts.issuer,
          audience: opts.audience,
          ...(signing.kid ? { keyid: signing.kid } : {}),
        },
      );
      return { token, expiresAt: new Date(exp * 1000) };
    },
    verify(token: string): TokenClaims {
      const decoded = jwt.decode(token, { complete: true });
      const key =
        decoded && typeof decoded.header === "object" ? opts.keys.verificationKey(decoded.header.kid) : undefined;
      if (!key) throw invalidToken();
      let payload: jwt.JwtPayload | string;
      try {
        payload = jwt.verify(token, key.key, {
          algorithms: [key.algorithm],
          issuer: opts.issuer,
          audience: opts.audience,
        });
      } catch {
        throw invalidToken();
      }
      const claims = claimsOf(payload);
      if (!claims) throw invalidToken();
      return claims;
    },
  };
}

/** The access token service. */
export type AccessTokens = ReturnType<typeof createAccessTokens>;

/** A new opaque refresh token and the hash that is stored for it. */
export function newRefreshToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashRefreshToken(token) };
}

/** The stored form of a refresh token. */
export function hashRefreshToken(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}
