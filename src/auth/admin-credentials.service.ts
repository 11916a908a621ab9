/**
 * The admin's user.v1.UserService methods over a user's credentials: SetPassword, and the one-time codes its
 * backend delivers by email (CreatePasswordResetCode, CreateEmailVerificationCode). The proto declares them
 * admin-only; the auth interceptor enforced it before these run. Merged into the UserService implementation
 * in src/app/features.ts (handlers that need auth-side things live in src/auth: docs/adr/0014-layers.md).
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { UserService } from "../../gen/user/v1/user_service_pb.js";
import { assertStrongPassword } from "../passwords/password-policy.ts";
import { hashPassword } from "../passwords/passwords.ts";
import { actorOf } from "../rpc/actor.ts";
import { invalidArgument, ServiceError } from "../rpc/errors.ts";
import { toProtoUser } from "../users/user.message.ts";
import type { User } from "../users/user.ts";
import type { UserStore } from "../users/user-store.ts";
import type { AuthEventRecorder } from "./auth-event-recorder.ts";
import type { CodePurpose, OneTimeCodes } from "./one-time-codes.ts";

const noPassword = () =>
  invalidArgument([
    { field: "user_id", description: "is a service account: it has no password and authenticates with API keys" },
  ]);

/** Builds the handlers. */
export function createAdminCredentials(deps: {
  users: UserStore;
  codes: OneTimeCodes;
  events: AuthEventRecorder;
}): Partial<ServiceImpl<typeof UserService>> {
  const { users, codes, events } = deps;

  /** The user that is not deleted, else USER_NOT_FOUND (as the store's writes say it). */
  async function liveUser(id: string): Promise<User> {
    const user = await users.findById(id);
    if (!user || user.state === "deleted") throw new ServiceError("USER_NOT_FOUND", `user ${id} not found`);
    return user;
  }

  async function issue(user: User, purpose: CodePurpose) {
    const { code, expireTime } = await codes.issue(user, purpose);
    return { code, expireTime: timestampFromDate(expireTime) };
  }

  return {
    async setPassword(req, ctx) {
      const user = await liveUser(req.userId);
      // Checked before hashing (the store refuses it too, after).
      if (user.kind === "service") throw noPassword();
      assertStrongPassword(req.password, { email: user.email, field: "password" });
      // As in CreateUser: nothing is counted before, so a full hashing queue is RATE_LIMITED and nothing changes.
      const hash = await hashPassword(req.password);
      // Revokes every session and access token of the user in the same statement (UserStore.setPassword).
      const updated = await users.setPassword(user.id, hash, req.changeRequired, actorOf(ctx));
      events.record("PASSWORD_CHANGED", ctx, { userId: user.id });
      return { user: toProtoUser(updated) };
    },

    async createPasswordResetCode(req) {
      const user = await liveUser(req.userId);
      if (user.kind === "service") throw noPassword();
      return issue(user, "password_reset");
    },

    async createEmailVerificationCode(req) {
      return issue(await liveUser(req.userId), "email_verification");
    },
  };
}
