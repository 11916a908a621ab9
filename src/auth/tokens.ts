/**
 * Access tokens (JWT, HS256 with a pinned algorithm; iss, aud and exp required and checked) and opaque
 * refresh tokens (random, stored only as SHA-256 hashes).
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { ServiceError } from "../errors.ts";

/** What signing and verifying need. */
export interface TokenOptions {
  secret: string;
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
}

/** An issued access token. */
export interface AccessToken {
  token: string;
  expiresAt: Date;
}

const unauthenticated = () => new ServiceError("UNAUTHENTICATED", "invalid or expired access token");

/** Signs and verifies access tokens. */
export function createAccessTokens(opts: TokenOptions) {
  return {
    issue(userId: string, admin: boolean, now = Date.now()): AccessToken {
      const iat = Math.floor(now / 1000);
      const exp = Math.floor((now + opts.accessTokenTtlMs) / 1000);
      const token = jwt.sign(
        { sub: userId, role: admin ? "ROLE_ADMIN" : "ROLE_USER", iat, exp, jti: randomUUID(), iat_ms: now },
        opts.secret,
        { algorithm: "HS256", issuer: opts.issuer, audience: opts.audience },
      );
      return { token, expiresAt: new Date(exp * 1000) };
    },
    verify(token: string): TokenClaims {
      let payload: jwt.JwtPayload | string;
      try {
        payload = jwt.verify(token, opts.secret, {
          algorithms: ["HS256"],
          issuer: opts.issuer,
          audience: opts.audience,
        });
      } catch {
        throw unauthenticated();
      }
      if (
        typeof payload !== "object" ||
        typeof payload.exp !== "number" ||
        typeof payload.iat !== "number" ||
        typeof payload.sub !== "string" ||
        typeof payload.jti !== "string" ||
        (payload.role !== "ROLE_ADMIN" && payload.role !== "ROLE_USER")
      ) {
        throw unauthenticated();
      }
      const iatMs = typeof payload.iat_ms === "number" && Math.floor(payload.iat_ms / 1000) === payload.iat ? payload.iat_ms : payload.iat * 1000;
      return {
        userId: payload.sub,
        admin: payload.role === "ROLE_ADMIN",
        tokenId: payload.jti,
        issuedAtMs: iatMs,
        expiresAtMs: payload.exp * 1000,
      };
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
