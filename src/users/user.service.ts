/**
 * user.v1.UserService handlers. Access rules are declared in the proto and enforced by the auth
 * interceptor before a handler runs; field rules by the validation interceptor. What remains here is what
 * only the handler can know: required-on-create fields, update masks, etags and state transitions.
 */
import type { Validator } from "@bufbuild/protovalidate";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type pg from "pg";
import { Role, type User, UserState } from "../../gen/user/v1/user_pb.js";
import type { UserService } from "../../gen/user/v1/user_service_pb.js";
import { assertStrongPassword } from "../passwords/password-policy.ts";
import { hashPassword } from "../passwords/passwords.ts";
import { type Caller, kCaller } from "../rpc/context.ts";
import { type FieldViolation, invalidArgument, ServiceError } from "../rpc/errors.ts";
import type { StoredState, UserRow } from "./user.entity.ts";
import { etagOf, storedRole, toProtoUser } from "./user.mapper.ts";
import type { UserRepository } from "./user.repository.ts";
import type { UserCache } from "./user-cache.ts";
import { importUsers } from "./user-import.ts";
import type { UserQueries } from "./user-queries.ts";
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

function checkEtag(row: UserRow, etag: string): void {
  if (etag !== "" && etag !== etagOf(row)) {
    throw new ServiceError("ETAG_MISMATCH", "the user was changed since this etag was read; read it again and retry");
  }
}

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
function requiredForUpdate(user: User, paths: readonly UpdatablePath[]): void {
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

/** Builds the service implementation over the user repository. */
export function createUserService(deps: {
  users: UserRepository;
  cache: UserCache;
  queries: UserQueries;
  watch: ReturnType<typeof createWatchUsers>;
  pool: pg.Pool;
  validator: Validator;
}): Partial<ServiceImpl<typeof UserService>> {
  const { users, queries } = deps;
  return {
    watchUsers: deps.watch,

    async listUsers(req) {
      return queries.list(req);
    },

    async *streamUsers(req, ctx) {
      for await (const batch of queries.stream(req, ctx.signal)) yield { users: batch };
    },

    async importUsers(requests) {
      return importUsers(requests, deps);
    },

    async createUser(req, ctx) {
      const caller = callerOf(ctx);
      const u = req.user;
      const missing: FieldViolation[] = [];
      if (!u?.email) missing.push({ field: "user.email", description: "is required" });
      if (!u?.displayName) missing.push({ field: "user.display_name", description: "is required" });
      if (!u || missing.length > 0) throw invalidArgument(missing);
      if (req.password !== undefined) assertStrongPassword(req.password, { email: u.email, field: "password" });
      const row = await users.create(
        {
          email: u.email,
          displayName: u.displayName,
          role: storedRole(u.role) ?? "user",
          labels: { ...u.labels },
          passwordHash: req.password !== undefined ? await hashPassword(req.password) : null,
        },
        req.requestId ? { callerId: caller.userId, requestId: req.requestId } : undefined,
      );
      return { user: toProtoUser(row) };
    },

    async getUser(req, ctx) {
      const caller = callerOf(ctx);
      const row = await deps.cache.get(req.userId);
      if (!row || (!caller.admin && row.state === "deleted")) {
        if (!caller.admin) throw new ServiceError("PERMISSION_DENIED", "you may only access your own user");
        throw notFound(req.userId);
      }
      return { user: toProtoUser(row) };
    },

    async batchGetUsers(req) {
      const rows = new Map((await users.findByIds(req.userIds)).map((r) => [r.id, r]));
      const missing = req.userIds.filter((id) => !rows.has(id));
      if (missing.length > 0) {
        throw new ServiceError("USER_NOT_FOUND", `users not found: ${[...new Set(missing)].slice(0, 10).join(", ")}`);
      }
      return { users: req.userIds.map((id) => toProtoUser(rows.get(id) as UserRow)) };
    },

    async updateUser(req, ctx) {
      const caller = callerOf(ctx);
      const u = req.user;
      if (!u || !req.updateMask) throw invalidArgument([{ field: "update_mask", description: "is required" }]);
      if (!uuid.test(u.id)) throw invalidArgument([{ field: "user.id", description: "must be a user id (UUID)" }]);
      const paths = maskPaths(req.updateMask.paths);
      if (!caller.admin && paths.some((p) => p !== "display_name" && p !== "labels")) {
        throw new ServiceError("PERMISSION_DENIED", "you may only change display_name and labels of your own user");
      }
      requiredForUpdate(u, paths);
      const row = await users.update(
        u.id,
        "updated",
        (row, now) => {
          if (paths.includes("email")) row.email = u.email;
          if (paths.includes("display_name")) row.displayName = u.displayName;
          if (paths.includes("role")) row.role = storedRole(u.role) ?? row.role;
          if (paths.includes("labels")) row.labels = { ...u.labels };
          if (paths.includes("state")) {
            const next: StoredState = u.state === UserState.SUSPENDED ? "suspended" : "active";
            if (next === "suspended" && row.state !== "suspended") row.tokensValidAfter = now;
            row.state = next;
          }
        },
        (row) => {
          if (row.state === "deleted") throw notFound(u.id);
          checkEtag(row, u.etag);
        },
      );
      return { user: toProtoUser(row) };
    },

    async deleteUser(req) {
      const row = await users.update(
        req.userId,
        "deleted",
        (row, now) => {
          row.state = "deleted";
          row.deleteTime = now;
          row.tokensValidAfter = now;
        },
        (row) => {
          if (row.state === "deleted") throw notFound(req.userId);
          checkEtag(row, req.etag);
        },
      );
      return { user: toProtoUser(row) };
    },

    async undeleteUser(req) {
      const existing = await users.findById(req.userId);
      if (!existing) throw notFound(req.userId);
      if (existing.state !== "deleted") return { user: toProtoUser(existing) };
      const row = await users.update(
        req.userId,
        "undeleted",
        (row) => {
          if (row.state !== "deleted") return;
          row.state = "active";
          row.deleteTime = null;
        },
        () => {},
      );
      return { user: toProtoUser(row) };
    },
  };
}
