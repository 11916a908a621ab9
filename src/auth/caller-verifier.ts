/**
 * Turns a bearer token into the Caller of a call: JWT verification (cached per token until it expires,
 * because HMAC and JSON parsing are the bulk of an auth check) and the user's current status from the user
 * store's in-memory cache (so a suspended, deleted or re-passworded user's tokens stop working, and a
 * demoted admin's token no longer grants admin), and whether its session was revoked (Logout, refresh-token
 * reuse, a password change: revoked-sessions.ts). No database query on the hot path.
 */
import { BoundedMap } from "../bounded-map.ts";
import type { Caller } from "../rpc/context.ts";
import type { UserStatus } from "../users/user.ts";
import type { UserStore } from "../users/user-store.ts";
import type { RevokedSessions } from "./revoked-sessions.ts";
import { type AccessTokens, invalidToken, type TokenClaims } from "./tokens.ts";

/** What deciding whether a token still holds needs. */
export interface TokenStanding {
  /** The users' status (from memory: the store given is the cached one). */
  users: Pick<UserStore, "status">;
  revokedSessions: RevokedSessions;
}

/**
 * The user's status when a verified token still holds: not expired, its session not revoked, its user
 * active and not re-keyed since it was issued. Undefined otherwise. The auth check runs it on every call;
 * a long-lived stream runs it again each time it wakes.
 */
export async function standingOf(
  claims: { userId: string; issuedAtMs: number; expiresAtMs: number; sessionId?: string },
  deps: TokenStanding,
): Promise<UserStatus | undefined> {
  if (Date.now() >= claims.expiresAtMs) return undefined;
  // Every verified access token has a session (tokens.ts requires `sid`); a caller without one is not a JWT.
  if (claims.sessionId !== undefined && deps.revokedSessions.has(claims.sessionId)) return undefined;
  const status = await deps.users.status(claims.userId);
  if (status?.state !== "active" || claims.issuedAtMs < status.tokensValidAfterMs) return undefined;
  return status;
}

/** Builds the verifier used by the auth interceptor. */
export function createCallerVerifier(deps: TokenStanding & { accessTokens: AccessTokens; cacheSize?: number }) {
  const max = deps.cacheSize ?? 10_000;
  const verified = new BoundedMap<string, TokenClaims>(max);
  return async (token: string): Promise<Caller> => {
    let claims = verified.get(token);
    if (claims && claims.expiresAtMs <= Date.now()) {
      verified.delete(token);
      claims = undefined;
    }
    if (!claims) {
      claims = deps.accessTokens.verify(token);
      verified.set(token, claims);
    }
    const status = await standingOf(claims, deps);
    // Same answer as a forged token: a caller learns nothing about whether the user exists.
    if (!status) throw invalidToken();
    return { ...claims, admin: status.role === "admin", passwordChangeRequired: status.passwordChangeRequired };
  };
}
