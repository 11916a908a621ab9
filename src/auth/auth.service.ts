/**
 * auth.v1.AuthService handlers: Login and GetCurrentUser. Wrong email and wrong password get the same
 * answer after the same work (an unknown email is verified against a dummy hash).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { AuthService, type Tokens, TokensSchema } from "../../gen/auth/v1/auth_service_pb.js";
import { ServiceError } from "../errors.ts";
import { kCaller } from "../interceptors/context.ts";
import type { UserRow } from "../users/user.entity.ts";
import { toProtoUser } from "../users/user.mapper.ts";
import type { UserRepository } from "../users/user.repository.ts";
import { verifyAgainstDummy, verifyPassword } from "./passwords.ts";
import type { SessionRepository } from "./session.repository.ts";
import type { AccessTokens } from "./tokens.ts";

const invalidCredentials = () => new ServiceError("INVALID_CREDENTIALS", "wrong email or password");

/** Builds the service implementation. */
export function createAuthService(deps: {
  users: UserRepository;
  sessions: SessionRepository;
  accessTokens: AccessTokens;
}): Partial<ServiceImpl<typeof AuthService>> {
  const { users, sessions, accessTokens } = deps;

  async function tokensFor(user: UserRow): Promise<Tokens> {
    const refreshToken = await sessions.start(user.id);
    const access = accessTokens.issue(user.id, user.role === "admin");
    return create(TokensSchema, {
      accessToken: access.token,
      refreshToken,
      accessTokenExpireTime: timestampFromDate(access.expiresAt),
      tokenType: "Bearer",
    });
  }

  return {
    async login(req) {
      const user = await users.findLiveByEmailWithHash(req.email);
      if (!user?.passwordHash) {
        await verifyAgainstDummy(req.password);
        throw invalidCredentials();
      }
      if (!(await verifyPassword(user.passwordHash, req.password))) throw invalidCredentials();
      if (user.state !== "active") throw new ServiceError("PERMISSION_DENIED", "this account is suspended");
      return { user: toProtoUser(user), tokens: await tokensFor(user) };
    },

    async getCurrentUser(_req, ctx) {
      const caller = ctx.values.get(kCaller);
      const user = caller ? await users.findById(caller.userId) : null;
      if (!user || user.state === "deleted") throw new ServiceError("UNAUTHENTICATED", "the token's user no longer exists");
      return { user: toProtoUser(user) };
    },
  };
}
