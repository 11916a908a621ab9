/**
 * auth.v1.AuthService handlers. Wrong email and wrong password get the same answer after the same work
 * (an unknown email is verified against a dummy hash and counted by the lockout like any other).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type AuthService, type Tokens, TokensSchema } from "../../gen/auth/v1/auth_service_pb.js";
import { assertStrongPassword } from "../passwords/password-policy.ts";
import {
  hashPassword,
  needsRehash,
  reserveHashSlot,
  verifyAgainstDummy,
  verifyPassword,
} from "../passwords/passwords.ts";
import { actorOf } from "../rpc/actor.ts";
import { kCaller, kClientAddress } from "../rpc/context.ts";
import { ServiceError } from "../rpc/errors.ts";
import { toProtoUser } from "../users/user.message.ts";
import type { RoleName, UserWithHash } from "../users/user.ts";
import type { UserStore } from "../users/user-store.ts";
import type { AuthEventRecorder } from "./auth-event-recorder.ts";
import type { LoginLockout } from "./lockout.ts";
import type { RevokedSessions } from "./revoked-sessions.ts";
import type { IssuedSession, SessionClient, SessionRepository } from "./session.repository.ts";
import { type AccessTokens, invalidToken } from "./tokens.ts";

const invalidCredentials = () => new ServiceError("INVALID_CREDENTIALS", "wrong email or password");
const badRefreshToken = () => new ServiceError("UNAUTHENTICATED", "invalid, expired or revoked refresh token");

/** Where the call comes from, recorded on the session (ListSessions). */
const clientOf = (ctx: HandlerContext): SessionClient => ({
  clientAddress: ctx.values.get(kClientAddress) || undefined,
  userAgent: ctx.requestHeader.get("user-agent") ?? undefined,
});

/** What the service needs. */
export interface AuthServiceDeps {
  users: UserStore;
  sessions: SessionRepository;
  accessTokens: AccessTokens;
  lockout: LoginLockout;
  revokedSessions: RevokedSessions;
  allowSignup: boolean;
  /** Where LOGIN_*, ACCOUNT_LOCKED, LOGOUT, TOKEN_REFRESHED, REFRESH_REUSE_DETECTED and PASSWORD_CHANGED go. */
  events: AuthEventRecorder;
}

/** The refusals of Login that are recorded as LOGIN_FAILED (not RATE_LIMITED, not a database failure). */
const LOGIN_REFUSALS = new Set(["INVALID_CREDENTIALS", "PERMISSION_DENIED", "ACCOUNT_LOCKED"]);

/** Builds the service implementation. */
export function createAuthService(deps: AuthServiceDeps): Partial<ServiceImpl<typeof AuthService>> {
  const { users, sessions, accessTokens, lockout, events } = deps;

  function tokens(user: { id: string; role: RoleName }, session: IssuedSession): Tokens {
    // Issued at the instant the session row recorded, so its expiry follows from the database (ADR 0013).
    const access = accessTokens.issue(user.id, user.role === "admin", session.sessionId, session.issuedAt);
    const refreshToken = session.refreshToken;
    return create(TokensSchema, {
      accessToken: access.token,
      refreshToken,
      accessTokenExpireTime: timestampFromDate(access.expiresAt),
      tokenType: "Bearer",
    });
  }

  async function currentUser(ctx: HandlerContext): Promise<UserWithHash> {
    const caller = ctx.values.get(kCaller);
    const user = caller ? await users.findByIdWithHash(caller.userId) : null;
    if (user?.state !== "active") throw invalidToken();
    return user;
  }

  return {
    async signUp(req, ctx) {
      if (!deps.allowSignup) throw new ServiceError("SIGNUP_DISABLED", "sign-up is disabled on this service");
      assertStrongPassword(req.password, { email: req.email, field: "password" });
      // No caller: the actor is the user signing up.
      const user = await users.create(
        {
          email: req.email,
          displayName: req.displayName,
          role: "user",
          labels: {},
          passwordHash: await hashPassword(req.password),
        },
        undefined,
        actorOf(ctx),
      );
      return { user: toProtoUser(user), tokens: tokens(user, await sessions.start(user.id, clientOf(ctx))) };
    },

    async login(req, ctx) {
      // Held before the attempt is counted: with the hashing queue full, RATE_LIMITED at once and nothing counted.
      const slot = reserveHashSlot();
      let user: UserWithHash | null | undefined;
      let locks = false;
      try {
        ({ locks } = await lockout.reserve(req.email));
        user = await users.findByEmailWithHash(req.email);
        const ok = user?.passwordHash
          ? await verifyPassword(user.passwordHash, req.password, slot)
          : await verifyAgainstDummy(req.password, slot);
        // A failure needs no second write: the reservation already counted it (and locked at the 5th). A
        // service account has no password (and authenticates only with API keys): the same answer.
        if (!user || !ok || user.kind === "service") throw invalidCredentials();
        await lockout.succeeded(req.email);
        if (user.passwordHash && needsRehash(user.passwordHash)) {
          // An imported bcrypt hash: replace it with argon2id now that the password is known.
          await users.replaceHash(user.id, user.passwordHash, await hashPassword(req.password, { wait: true }));
        }
        if (user.state !== "active") throw new ServiceError("PERMISSION_DENIED", "this account is suspended");
        // Only if no password change, reset or suspension committed since the hash was read (it would have
        // revoked the user's sessions before this one existed).
        const session = await sessions.startIfStill(
          user.id,
          { tokensValidAfterMs: user.tokensValidAfter?.getTime() ?? 0 },
          clientOf(ctx),
        );
        if (!session) throw invalidCredentials();
        events.record("LOGIN_SUCCEEDED", ctx, { userId: user.id, sessionId: session.sessionId, email: req.email });
        return {
          user: toProtoUser(user),
          tokens: tokens(user, session),
          passwordChangeRequired: user.passwordChangeRequired,
        };
      } catch (err) {
        if (err instanceof ServiceError && LOGIN_REFUSALS.has(err.reason)) {
          // A locked email is refused before the user is read: read it now (from memory, mostly) for the event.
          if (user === undefined) user = await users.findByEmailWithHash(req.email).catch(() => null);
          const facts = { userId: user?.id, email: req.email };
          events.record("LOGIN_FAILED", ctx, facts);
          if (locks) events.record("ACCOUNT_LOCKED", ctx, facts);
        }
        throw err;
      } finally {
        slot.release();
      }
    },

    async refreshToken(req, ctx) {
      const rotation = await sessions.rotate(req.refreshToken, clientOf(ctx));
      if (!rotation.ok) {
        // A rotated token presented again: its whole session is revoked, access tokens included.
        if (rotation.why === "reused") {
          deps.revokedSessions.add(rotation.session);
          events.record("REFRESH_REUSE_DETECTED", ctx, { userId: rotation.userId, sessionId: rotation.session.id });
        }
        throw badRefreshToken();
      }
      const user = await users.findById(rotation.userId);
      if (!user) throw badRefreshToken();
      events.record("TOKEN_REFRESHED", ctx, { userId: user.id, sessionId: rotation.sessionId });
      return { tokens: tokens(user, rotation) };
    },

    async logout(req, ctx) {
      const revoked = await sessions.revokeSessionOf(req.refreshToken);
      if (revoked) deps.revokedSessions.add(revoked.session);
      // A retried Logout of a session it already ended records nothing more.
      if (revoked?.now) events.record("LOGOUT", ctx, { userId: revoked.userId, sessionId: revoked.session.id });
      return {};
    },

    async getCurrentUser(_req, ctx) {
      return { user: toProtoUser(await currentUser(ctx)) };
    },

    async changePassword(req, ctx) {
      const user = await currentUser(ctx);
      assertStrongPassword(req.newPassword, { email: user.email, field: "new_password" });
      // As in login: a full hashing queue is refused before the attempt is counted.
      const slot = reserveHashSlot();
      let locks = false;
      try {
        ({ locks } = await lockout.reserve(user.email));
        if (!user.passwordHash || !(await verifyPassword(user.passwordHash, req.currentPassword, slot))) {
          // The 5th wrong current password locks the email for Login too.
          if (locks) events.record("ACCOUNT_LOCKED", ctx, { userId: user.id, email: user.email });
          throw invalidCredentials();
        }
      } finally {
        slot.release();
      }
      await lockout.succeeded(user.email);
      const hash = await hashPassword(req.newPassword, { wait: true });
      // Revokes, in the same transaction, every session of the user and every access token issued before now
      // (users.setPassword); the new session below is started after it.
      const updated = await users.setPassword(user.id, hash, false, actorOf(ctx));
      events.record("PASSWORD_CHANGED", ctx, { userId: user.id, sessionId: ctx.values.get(kCaller)?.sessionId });
      return { tokens: tokens(updated, await sessions.start(updated.id, clientOf(ctx))) };
    },
  };
}
