/**
 * The session RPCs: ListSessions and RevokeSession (auth.v1.AuthService, the caller's own sessions) and
 * ListUserSessions and RevokeUserSessions (user.v1.UserService, admin). Merged into the two services'
 * implementations in src/app/features.ts. Who may call is the proto's declaration (the auth interceptor);
 * ids are UUIDs by the proto's rules (the validation interceptor).
 *
 * Another user's session and an unknown id get the same SESSION_NOT_FOUND, so the answer tells nothing about
 * other users. Revoking a session that is already revoked succeeds and changes nothing (a retry of a revoke
 * whose answer was lost must not fail). What is revoked is added to the revoked-sessions registry at once:
 * this replica refuses its access tokens from the next call, the others from their next poll.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { SessionSchema } from "../../gen/auth/v1/session_pb.js";
import { SessionSchema as UserSessionSchema } from "../../gen/user/v1/session_pb.js";
import type { UserService } from "../../gen/user/v1/user_service_pb.js";
import { type Caller, kCaller } from "../rpc/context.ts";
import { ServiceError } from "../rpc/errors.ts";
import type { UserStore } from "../users/user-store.ts";
import type { AuthEventRecorder } from "./auth-event-recorder.ts";
import type { RevokedSessions } from "./revoked-sessions.ts";
import type { SessionPageTokens } from "./session-page-token.ts";
import type { SessionView, UserSessions } from "./user-sessions.ts";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

/** What the handlers need. */
export interface SessionHandlerDeps {
  sessions: UserSessions;
  revokedSessions: RevokedSessions;
  pageTokens: SessionPageTokens;
  /** Whether a user exists (ListUserSessions, RevokeUserSessions). */
  users: Pick<UserStore, "findById">;
  /** SESSION_REVOKED, one per session a call revoked. */
  events: AuthEventRecorder;
}

function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(kCaller);
  if (!caller) throw new ServiceError("UNAUTHENTICATED", "not authenticated");
  return caller;
}

const sessionNotFound = (id: string) => new ServiceError("SESSION_NOT_FOUND", `session ${id} not found`);
const userNotFound = (id: string) => new ServiceError("USER_NOT_FOUND", `user ${id} not found`);

/** The fields of both Session messages (auth.v1 and user.v1 are the same on the wire). */
const fieldsOf = (s: SessionView, caller: Caller) => ({
  id: s.id,
  createTime: timestampFromDate(s.createTime),
  lastRefreshTime: timestampFromDate(s.lastRefreshTime),
  expireTime: timestampFromDate(s.expireTime),
  clientAddress: s.clientAddress,
  userAgent: s.userAgent,
  current: s.id === caller.sessionId,
});

/** Builds the handlers of both services. */
export function createSessionHandlers(deps: SessionHandlerDeps) {
  const { sessions, revokedSessions, pageTokens, events } = deps;

  /** A page of the user's live sessions and the next page's token. */
  async function page(userId: string, req: { pageSize: number; pageToken: string }) {
    const after = pageTokens.decode(userId, req.pageToken);
    const size = req.pageSize <= 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
    const p = await sessions.list(userId, after, size);
    return { sessions: p.sessions, nextPageToken: p.next ? pageTokens.encode(userId, p.next) : "" };
  }

  async function existing(userId: string): Promise<void> {
    if (!(await deps.users.findById(userId))) throw userNotFound(userId);
  }

  const auth: Partial<ServiceImpl<typeof AuthService>> = {
    async listSessions(req, ctx) {
      const caller = callerOf(ctx);
      const p = await page(caller.userId, req);
      return {
        sessions: p.sessions.map((s) => create(SessionSchema, fieldsOf(s, caller))),
        nextPageToken: p.nextPageToken,
      };
    },

    async revokeSession(req, ctx) {
      const caller = callerOf(ctx);
      const done = await sessions.revoke(caller.userId, req.sessionId);
      if (!done) throw sessionNotFound(req.sessionId);
      if (done.revoked) {
        revokedSessions.add(done.revoked);
        events.record("SESSION_REVOKED", ctx, { userId: caller.userId, sessionId: done.revoked.id });
      }
      return {};
    },
  };

  const user: Partial<ServiceImpl<typeof UserService>> = {
    async listUserSessions(req, ctx) {
      const caller = callerOf(ctx);
      await existing(req.userId);
      const p = await page(req.userId, req);
      return {
        sessions: p.sessions.map((s) => create(UserSessionSchema, fieldsOf(s, caller))),
        nextPageToken: p.nextPageToken,
      };
    },

    async revokeUserSessions(req, ctx) {
      if (req.sessionId !== undefined) {
        await existing(req.userId);
        const done = await sessions.revoke(req.userId, req.sessionId);
        if (!done) throw sessionNotFound(req.sessionId);
        if (done.revoked) {
          revokedSessions.add(done.revoked);
          events.record("SESSION_REVOKED", ctx, { userId: req.userId, sessionId: done.revoked.id });
        }
        return { revokedCount: done.wasLive ? 1 : 0 };
      }
      const done = await sessions.revokeAll(req.userId);
      if (!done) throw userNotFound(req.userId);
      for (const s of done.revoked) {
        revokedSessions.add(s);
        events.record("SESSION_REVOKED", ctx, { userId: req.userId, sessionId: s.id });
      }
      return { revokedCount: done.live };
    },
  };

  return { auth, user };
}
