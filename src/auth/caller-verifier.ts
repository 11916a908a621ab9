/**
 * Turns a bearer token into the Caller of a call: JWT verification (cached per token until it expires,
 * because HMAC and JSON parsing are the bulk of an auth check) and the user's current status from the user
 * store's in-memory cache (so a suspended, deleted or re-passworded user's tokens stop working, and a
 * demoted admin's token no longer grants admin), and whether its session was revoked (Logout, refresh-token
 * reuse, a password change: revoked-sessions.ts). A bearer token starting `usk_` is an API key instead: found
 * by the hash of the secret in the in-memory registry (api-key-registry.ts), it authenticates as its user with
 * that user's current role. No database query on the hot path either way.
 */
import { BoundedMap } from "../bounded-map.ts";
import type { Caller } from "../rpc/context.ts";
import type { UserStatus } from "../users/user.ts";
import type { UserStore } from "../users/user-store.ts";
import type { ApiKeyRegistry } from "./api-key-registry.ts";
import { looksLikeApiKey } from "./api-key-secret.ts";
import type { RevokedSessions } from "./revoked-sessions.ts";
import { type AccessTokens, invalidToken, type TokenClaims } from "./tokens.ts";

/** What deciding whether a token still holds needs. */
export interface TokenStanding {
  /** The users' status (from memory: the store given is the cached one). */
  users: Pick<UserStore, "status">;
  revokedSessions: RevokedSessions;
  /** The live API keys. */
  apiKeys: Pick<ApiKeyRegistry, "find" | "isLive" | "used">;
}

/**
 * The user's status when a verified token still holds: not expired, its session not revoked, its user
 * active and not re-keyed since it was issued. Undefined otherwise. For an API key: the key not deleted
 * nor expired and its user active (a password change does not end keys: docs/adr/0019-api-keys.md). The
 * auth check runs it on every call; a long-lived stream runs it again each time it wakes.
 */
export async function standingOf(
  claims: { userId: string; issuedAtMs: number; expiresAtMs: number; sessionId?: string; apiKeyId?: string },
  deps: TokenStanding,
): Promise<UserStatus | undefined> {
  if (Date.now() >= claims.expiresAtMs) return undefined;
  if (claims.apiKeyId !== undefined) {
    if (!deps.apiKeys.isLive(claims.apiKeyId)) return undefined;
    const status = await deps.users.status(claims.userId);
    return status?.state === "active" ? status : undefined;
  }
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
    if (looksLikeApiKey(token)) return apiKeyCaller(token, deps);
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

/** The caller of an API key: its user, with the user's current role. */
async function apiKeyCaller(secret: string, deps: TokenStanding): Promise<Caller> {
  const key = await deps.apiKeys.find(secret);
  if (!key) throw invalidToken();
  const caller = {
    userId: key.userId,
    tokenId: key.id,
    issuedAtMs: key.createMs,
    expiresAtMs: key.expiresAtMs,
    sessionId: undefined,
    apiKeyId: key.id,
  };
  const status = await standingOf(caller, deps);
  // Expired, deleted meanwhile, or its user suspended or deleted: the answer of any bad token.
  if (!status) throw invalidToken();
  deps.apiKeys.used(key.id);
  // An admin's "change your password" restricts the user's sessions, not its keys (no password is involved).
  return { ...caller, admin: status.role === "admin", passwordChangeRequired: false };
}
