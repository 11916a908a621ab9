/**
 * Access tokens (JWT with `typ: at+jwt` in the header, RFC 9068, so no other JWT signed with the same key
 * passes for one, RFC 8725 §3.11; iss, aud, exp, iat, sub, role, jti and sid required and checked; the
 * algorithm pinned to the key the token's `kid` names, see signing-keys.ts) and opaque refresh tokens
 * (random, stored only as SHA-256 hashes). Every rejection carries the same message, so a forger learns
 * nothing about which check failed (RFC 8725 §2.8, OWASP ASVS V3.5).
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { ServiceError } from "../rpc/errors.ts";
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
  /**
   * The session (refresh-token family) the token was issued in (`sid`), required: every token this service
   * issues belongs to a session, so revoking sessions revokes every token (docs/adr/0013-sessions.md).
   */
  sessionId: string;
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

/** The JOSE `typ` of an access token (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYPE = "at+jwt";

// RFC 9068 §4: "at+jwt" or "application/at+jwt"; media types compare case-insensitively.
const isAccessTokenType = (typ: unknown) => typeof typ === "string" && /^(application\/)?at\+jwt$/i.test(typ);

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
    typeof payload.sid !== "string" ||
    !UUID.test(payload.sid) ||
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
    sessionId: payload.sid,
  };
}

/** Signs and verifies access tokens. */
export function createAccessTokens(opts: TokenOptions) {
  const { signing } = opts.keys;
  return {
    /**
     * An access token of a session. `issuedAt` is the instant the session row recorded for this issue (its
     * last_refresh_time), not the time of signing: `exp` then follows from what the database holds, which
     * is what lets a replica know how long to remember a revoked session (revoked-sessions.ts).
     */
    issue(userId: string, admin: boolean, sessionId: string, issuedAt: Date): AccessToken {
      const now = issuedAt.getTime();
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
          sid: sessionId,
        },
        signing.key,
        {
          algorithm: signing.algorithm,
          issuer: opts.issuer,
          audience: opts.audience,
          header: { alg: signing.algorithm, typ: ACCESS_TOKEN_TYPE },
          ...(signing.kid ? { keyid: signing.kid } : {}),
        },
      );
      return { token, expiresAt: new Date(exp * 1000) };
    },
    verify(token: string): TokenClaims {
      const decoded = jwt.decode(token, { complete: true });
      const key =
        decoded && typeof decoded.header === "object" && isAccessTokenType(decoded.header.typ)
          ? opts.keys.verificationKey(decoded.header.kid)
          : undefined;
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
