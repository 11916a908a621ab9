/**
 * user.v1.UserService handlers over a UserStore (./user-store.ts). Access rules are declared in the proto and
 * enforced by the auth interceptor before a handler runs; field rules by the validation interceptor; etags
 * and state transitions by the store and the domain (./user.ts). What remains here is what only the handler
 * can know: required fields, update masks, page tokens, and the one rule the proto cannot declare (GetUser).
 */
import type { Validator } from "@bufbuild/protovalidate";
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { Role, type User as UserMessage, UserState } from "../../gen/user/v1/user_pb.js";
import type { UserService } from "../../gen/user/v1/user_service_pb.js";
import { assertStrongPassword } from "../passwords/password-policy.ts";
import { hashPassword } from "../passwords/passwords.ts";
import { actorOf } from "../rpc/actor.ts";
import { type Caller, kCaller } from "../rpc/context.ts";
import { type FieldViolation, invalidArgument, ServiceError } from "../rpc/errors.ts";
import type { createListUserChanges } from "./history/history.service.ts";
import { type PageTokenCodec, parseFilter, parseOrderBy } from "./list/index.ts";
import { kindFromProto, roleFromProto, settableStateFromProto, toProtoUser } from "./user.message.ts";
import type { User, UserPatch } from "./user.ts";
import { importUsers } from "./user-import.ts";
import type { UserStore } from "./user-store.ts";
import type { createWatchUsers } from "./watch/watch-users.ts";

const updatable = ["email", "display_name", "role", "labels", "state"] as const;
type UpdatablePath = (typeof updatable)[number];

function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(kCaller);
  if (!caller) throw new ServiceError("UNAUTHENTICATED", "not authenticated");
  return caller;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const notFound = (id: string) => new ServiceError("USER_NOT_FOUND", `user ${id} not found`);

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

/** The update_mask paths, with `*` expanded; unknown paths are INVALID_ARGUMENT. */
function maskPaths(paths: readonly string[]): UpdatablePath[] {
  if (paths.length === 0)
    throw invalidArgument([{ field: "update_mask", description: "must name at least one field" }]);
  if (paths.includes("*")) {
    if (paths.length > 1) throw invalidArgument([{ field: "update_mask", description: "`*` must be the only path" }]);
    return [...updatable];
  }
  const unknown = paths.filter((p) => !(updatable as readonly string[]).includes(p));
  if (unknown.length > 0) {
    throw invalidArgument([
      {
        field: "update_mask",
        description: `unknown or read-only path(s): ${unknown.join(", ")}; updatable: ${updatable.join(", ")}`,
      },
    ]);
  }
  return [...new Set(paths)] as UpdatablePath[];
}

/** Checks the values of the masked fields that protovalidate cannot know are required. */
function requiredForUpdate(user: UserMessage, paths: readonly UpdatablePath[]): void {
  const v: FieldViolation[] = [];
  if (paths.includes("email") && user.email === "") v.push({ field: "user.email", description: "is required" });
  if (paths.includes("display_name") && user.displayName === "")
    v.push({ field: "user.display_name", description: "is required" });
  if (paths.includes("role") && user.role === Role.UNSPECIFIED)
    v.push({ field: "user.role", description: "is required" });
  if (paths.includes("state") && user.state !== UserState.ACTIVE && user.state !== UserState.SUSPENDED) {
    v.push({
      field: "user.state",
      description: "may only be set to USER_STATE_ACTIVE or USER_STATE_SUSPENDED (use DeleteUser/UndeleteUser)",
    });
  }
  if (v.length > 0) throw invalidArgument(v);
}

/** The patch an update makes: the masked fields of the message. */
function patchOf(u: UserMessage, paths: readonly UpdatablePath[]): UserPatch {
  const patch: UserPatch = {};
  if (paths.includes("email")) patch.email = u.email;
  if (paths.includes("display_name")) patch.displayName = u.displayName;
  if (paths.includes("role")) patch.role = roleFromProto(u.role);
  if (paths.includes("labels")) patch.labels = u.labels;
  if (paths.includes("state")) patch.state = settableStateFromProto(u.state);
  return patch;
}

/** Builds the service implementation over a user store (page tokens must be keyed alike on every replica). */
export function createUserService(deps: {
  users: UserStore;
  pageTokens: PageTokenCodec;
  watch: ReturnType<typeof createWatchUsers>;
  history: ReturnType<typeof createListUserChanges>;
  validator: Validator;
}): Partial<ServiceImpl<typeof UserService>> {
  const { users, pageTokens } = deps;
  return {
    watchUsers: deps.watch,
    listUserChanges: deps.history,

    async listUsers(req) {
      const request = {
        filter: parseFilter(req.filter),
        orderBy: parseOrderBy(req.orderBy),
        showDeleted: req.showDeleted,
      };
      const start = pageTokens.decode(request, req.pageToken);
      const size = req.pageSize <= 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
      // Pages after the first report the first page's total_size, carried in the token (docs/adr/0018).
      const page = await users.list({ request, after: start?.cursor ?? null, total: start?.total ?? null, size });
      return {
        users: page.users.map(toProtoUser),
        nextPageToken: page.next ? pageTokens.encode(request, { cursor: page.next, total: page.total }) : "",
        totalSize: page.total,
      };
    },

    async *streamUsers(req, ctx) {
      const query = { filter: parseFilter(req.filter), showDeleted: req.showDeleted };
      try {
        for await (const batch of users.stream(query, ctx.signal)) yield { users: batch.map(toProtoUser) };
      } catch (err) {
        // The store throws the signal's reason when the call ends before the export does. Cut short by
        // shutdown or a deadline (a ConnectError): say so, so the caller retries; otherwise just stop.
        if (err === ctx.signal.reason && !(err instanceof ConnectError)) return;
        throw err;
      }
    },

    async importUsers(requests, ctx) {
      return importUsers(requests, { ...deps, actor: actorOf(ctx) });
    },

    async createUser(req, ctx) {
      const caller = callerOf(ctx);
      const u = req.user;
      const missing: FieldViolation[] = [];
      if (!u?.email) missing.push({ field: "user.email", description: "is required" });
      if (!u?.displayName) missing.push({ field: "user.display_name", description: "is required" });
      if (!u || missing.length > 0) throw invalidArgument(missing);
      const kind = kindFromProto(u.kind);
      if (kind === "service" && req.password !== undefined) {
        throw invalidArgument([
          { field: "password", description: "a service account has no password: it authenticates with API keys" },
        ]);
      }
      if (req.password !== undefined) assertStrongPassword(req.password, { email: u.email, field: "password" });
      const user = await users.create(
        {
          email: u.email,
          displayName: u.displayName,
          role: roleFromProto(u.role) ?? "user",
          kind,
          labels: { ...u.labels },
          passwordHash: req.password !== undefined ? await hashPassword(req.password) : null,
        },
        req.requestId ? { callerId: caller.userId, requestId: req.requestId } : undefined,
        actorOf(ctx),
      );
      return { user: toProtoUser(user) };
    },

    async getUser(req, ctx) {
      const caller = callerOf(ctx);
      const user = await users.findById(req.userId);
      // Not a duplicate of the proto's declaration (ADMIN_OR_SELF, which the auth interceptor enforced before
      // this ran): the declaration cannot say that only admins see soft-deleted users. A non-admin here is
      // reading itself, and finding itself deleted or gone (deleted after its token was checked) gets
      // PERMISSION_DENIED, as for any user not its own, so the answer never tells a user from a missing one.
      if (!user || (!caller.admin && user.state === "deleted")) {
        if (!caller.admin) throw new ServiceError("PERMISSION_DENIED", "you may only access your own user");
        throw notFound(req.userId);
      }
      return { user: toProtoUser(user) };
    },

    async batchGetUsers(req) {
      const found = new Map((await users.findByIds(req.userIds)).map((u) => [u.id, u]));
      const missing = req.userIds.filter((id) => !found.has(id));
      if (missing.length > 0) {
        throw new ServiceError("USER_NOT_FOUND", `users not found: ${[...new Set(missing)].slice(0, 10).join(", ")}`);
      }
      return { users: req.userIds.map((id) => toProtoUser(found.get(id) as User)) };
    },

    // Who may change which fields is the proto's declaration (ADMIN_OR_SELF with self_updatable_fields),
    // enforced by the auth interceptor before this runs.
    async updateUser(req, ctx) {
      const u = req.user;
      if (!u || !req.updateMask) throw invalidArgument([{ field: "update_mask", description: "is required" }]);
      if (!uuid.test(u.id)) throw invalidArgument([{ field: "user.id", description: "must be a user id (UUID)" }]);
      const paths = maskPaths(req.updateMask.paths);
      requiredForUpdate(u, paths);
      return { user: toProtoUser(await users.update(u.id, patchOf(u, paths), u.etag, undefined, actorOf(ctx))) };
    },

    async deleteUser(req, ctx) {
      return { user: toProtoUser(await users.delete(req.userId, req.etag, undefined, actorOf(ctx))) };
    },

    async undeleteUser(req, ctx) {
      return { user: toProtoUser(await users.undelete(req.userId, actorOf(ctx))) };
    },
  };
}
