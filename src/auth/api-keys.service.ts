/**
 * user.v1.UserService handlers of API keys: CreateApiKey, ListApiKeys, DeleteApiKey (merged into the user
 * service in src/app/features.ts). Who may call them is the proto's declaration (admin, or self on
 * `user_id`), enforced by the auth interceptor; field rules by protovalidate. What remains here: the expiry
 * (in the future), the per-user cap, the user's existence, and telling this replica's registry at once.
 */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ApiKey, ApiKeySchema } from "../../gen/user/v1/api_key_pb.js";
import type { UserService } from "../../gen/user/v1/user_service_pb.js";
import { invalidArgument, ServiceError } from "../rpc/errors.ts";
import type { UserStore } from "../users/user-store.ts";
import type { ApiKeyRecord, ApiKeyRepository } from "./api-key.repository.ts";
import { type ApiKeyRegistry, NO_EXPIRY } from "./api-key-registry.ts";
import { newApiKeySecret } from "./api-key-secret.ts";
import type { AuthEventRecorder } from "./auth-event-recorder.ts";

/** The most live keys one user may hold (deleted keys do not count). */
export const MAX_API_KEYS_PER_USER = 100;

const userNotFound = (id: string) => new ServiceError("USER_NOT_FOUND", `user ${id} not found`);

function toProtoApiKey(k: ApiKeyRecord): ApiKey {
  return create(ApiKeySchema, {
    id: k.id,
    userId: k.userId,
    displayName: k.displayName,
    prefix: k.prefix,
    createTime: timestampFromDate(k.createTime),
    expireTime: k.expireTime ? timestampFromDate(k.expireTime) : undefined,
    lastUsedTime: k.lastUsedTime ? timestampFromDate(k.lastUsedTime) : undefined,
  });
}

/** The expiry asked for: unset (never), or a valid instant in the future. */
function expiryOf(ts: Timestamp | undefined): Date | null {
  if (!ts) return null;
  const ms = ts.nanos >= 0 && ts.nanos <= 999_999_999 ? timestampMs(ts) : Number.NaN;
  const why = !Number.isFinite(ms)
    ? "is not a valid timestamp"
    : ms <= Date.now()
      ? "must be in the future (leave it unset for a key that does not expire)"
      : ms >= NO_EXPIRY
        ? "must be before the year 10000"
        : undefined;
  if (why) throw invalidArgument([{ field: "expire_time", description: why }]);
  return new Date(ms);
}

/** Builds the handlers. */
export function createApiKeyService(deps: {
  keys: ApiKeyRepository;
  registry: ApiKeyRegistry;
  users: Pick<UserStore, "findById">;
  maxPerUser?: number;
  /** API_KEY_CREATED, API_KEY_DELETED (the secret never). */
  events: AuthEventRecorder;
}): Partial<ServiceImpl<typeof UserService>> {
  const max = deps.maxPerUser ?? MAX_API_KEYS_PER_USER;
  return {
    async createApiKey(req, ctx) {
      if (req.displayName.trim() === "") {
        throw invalidArgument([{ field: "display_name", description: "must not be blank" }]);
      }
      const expireTime = expiryOf(req.expireTime);
      const { secret, hash, prefix } = newApiKeySecret();
      const created = await deps.keys.create({
        userId: req.userId,
        displayName: req.displayName,
        prefix,
        hash,
        expireTime,
        max,
      });
      if (!created.ok) {
        if (created.why === "no-user") throw userNotFound(req.userId);
        throw new ServiceError(
          "API_KEY_LIMIT_REACHED",
          `user ${req.userId} already has ${max} API keys, the most allowed: delete one first`,
        );
      }
      // Usable on this replica at once; the others learn it from their poll (or at its first use there).
      deps.registry.added(created.state);
      deps.events.record("API_KEY_CREATED", ctx, { userId: req.userId });
      return { apiKey: toProtoApiKey(created.key), secret };
    },

    async listApiKeys(req) {
      // Deleted users included: an admin may see (and delete) the keys that UndeleteUser would bring back.
      if (!(await deps.users.findById(req.userId))) throw userNotFound(req.userId);
      return { apiKeys: (await deps.keys.list(req.userId)).map(toProtoApiKey) };
    },

    async deleteApiKey(req, ctx) {
      const deleted = await deps.keys.delete(req.userId, req.apiKeyId);
      if (!deleted) {
        throw new ServiceError("API_KEY_NOT_FOUND", `API key ${req.apiKeyId} of user ${req.userId} not found`);
      }
      deps.registry.deleted(deleted);
      deps.events.record("API_KEY_DELETED", ctx, { userId: req.userId });
      return {};
    },
  };
}
