/**
 * The public auth.v1.AuthService methods that take a one-time code: ResetPassword and VerifyEmail. Merged
 * into the AuthService implementation in src/app/features.ts.
 *
 * Every failure of the code reads the same: a wrong, used, expired or dead code, an unknown email, a deleted
 * user, a service account (which has no password to reset) or a code issued for an address the user no
 * longer has are all INVALID_CODE with one message. Each path does the same work before answering: one read
 * of the user by email and one statement over the codes (which matches nothing when there is no user), and
 * no password is hashed before the code is accepted.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { assertStrongPassword } from "../passwords/password-policy.ts";
import { hashPassword, reserveHashSlot } from "../passwords/passwords.ts";
import { actorOf } from "../rpc/actor.ts";
import { ServiceError } from "../rpc/errors.ts";
import { toProtoUser } from "../users/user.message.ts";
import type { User } from "../users/user.ts";
import type { UserStore } from "../users/user-store.ts";
import type { AuthEventRecorder } from "./auth-event-recorder.ts";
import type { LoginLockout } from "./lockout.ts";
import type { OneTimeCodes } from "./one-time-codes.ts";

const invalidCode = () => new ServiceError("INVALID_CODE", "invalid, expired or already used code");

/**
 * Runs the write that follows an accepted code. The user can be deleted, or its email changed, between the
 * code's check and the write: the store then says USER_NOT_FOUND (or, for a service account, INVALID_ARGUMENT),
 * which the caller learns as an invalid code, like any other code that no longer fits its user.
 */
async function afterCode<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof ServiceError && (err.reason === "USER_NOT_FOUND" || err.reason === "INVALID_ARGUMENT")) {
      throw invalidCode();
    }
    throw err;
  }
}

/** Builds the handlers. */
export function createCodeRedemption(deps: {
  users: UserStore;
  codes: OneTimeCodes;
  lockout: LoginLockout;
  events: AuthEventRecorder;
}): Partial<ServiceImpl<typeof AuthService>> {
  const { users, codes, lockout, events } = deps;

  return {
    // Public methods: the actor is the user the code was issued to (actorOf: no caller, `self`).
    async resetPassword(req, ctx) {
      // The same for every email (it compares with the one given, which is the account's when the code fits).
      assertStrongPassword(req.newPassword, { email: req.email, field: "new_password" });
      // Held before the code is tried: with the hashing queue full the call is RATE_LIMITED at once, and the
      // code is neither used nor counted; once used, the hash is never refused half-way.
      const slot = reserveHashSlot();
      let user: User | null;
      try {
        const found = await users.findByEmailWithHash(req.email);
        user = found?.kind === "service" ? null : found;
        if (!(await codes.use(user, "password_reset", req.code)) || !user) throw invalidCode();
        const hash = await hashPassword(req.newPassword, { slot });
        // Revokes every session and access token of the user, and lifts password_change_required.
        const id = user.id;
        await afterCode(() => users.setPassword(id, hash, false, actorOf(ctx)));
      } finally {
        slot.release();
      }
      // A reset proves the person holds the mailbox: the login lockout of the address ends too.
      for (const email of new Set([user.email, req.email])) await lockout.succeeded(email);
      events.record("PASSWORD_RESET", ctx, { userId: user.id, email: req.email });
      return {};
    },

    async verifyEmail(req, ctx) {
      const user = await users.findByEmailWithHash(req.email);
      if (!(await codes.use(user, "email_verification", req.code)) || !user) throw invalidCode();
      return { user: toProtoUser(await afterCode(() => users.verifyEmail(user.id, user.email, actorOf(ctx)))) };
    },
  };
}
