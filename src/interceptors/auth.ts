/**
 * Enforces the access policy each RPC declares in the proto (`authz.v1.access`). A method without a
 * declaration is denied. Tokens are verified by the function given, so this file knows nothing of JWTs.
 */
import { type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { type AccessPolicy, Audience, access } from "../../gen/authz/v1/authz_pb.js";
import { type Caller, kCaller } from "../rpc/context.ts";
import { ServiceError } from "../rpc/errors.ts";

/** Verifies a bearer token; throws ServiceError UNAUTHENTICATED when it is not good. */
export type TokenVerifier = (token: string) => Promise<Caller> | Caller;

const policies = new WeakMap<DescMethod, AccessPolicy | null>();

/** The declared policy of a method, or null when it has none. Cached per method descriptor. */
export function policyOf(method: DescMethod): AccessPolicy | null {
  let p = policies.get(method);
  if (p === undefined) {
    p = hasOption(method, access) ? getOption(method, access) : null;
    policies.set(method, p);
  }
  return p;
}

/** Extracts the token of an `authorization: Bearer <token>` header. */
export function bearerToken(header: string | null): string | undefined {
  const m = header ? /^Bearer[ \t]+([^\s]+)\s*$/i.exec(header) : null;
  return m?.[1];
}

function fieldAt(message: unknown, path: string): unknown {
  let v: unknown = message;
  for (const key of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())];
  }
  return v;
}

const denied = (why: string) => new ServiceError("PERMISSION_DENIED", why);

/** The interceptor. `publicServices` names services whose protos we do not own (health, reflection): no token needed. */
export function createAuthInterceptor(opts: {
  verify: TokenVerifier;
  publicServices?: readonly string[];
}): Interceptor {
  const publicServices = new Set(opts.publicServices ?? []);
  return (next) => async (req) => {
    if (publicServices.has(req.service.typeName)) return next(req);
    const policy = policyOf(req.method);
    if (!policy || policy.audience === Audience.UNSPECIFIED) throw denied("this method declares no access policy");
    if (policy.audience === Audience.PUBLIC) return next(req);
    const token = bearerToken(req.header.get("authorization"));
    if (!token) throw new ServiceError("UNAUTHENTICATED", "missing bearer token in the authorization header");
    const caller = await opts.verify(token);
    req.contextValues.set(kCaller, caller);
    if (caller.passwordChangeRequired && !policy.allowedWhilePasswordChangeRequired) {
      throw new ServiceError(
        "PASSWORD_CHANGE_REQUIRED",
        "an administrator requires a new password: call ChangePassword first",
      );
    }
    if (caller.admin || policy.audience === Audience.AUTHENTICATED) return next(req);
    if (policy.audience === Audience.ADMIN) throw denied("this method needs the admin role");
    if (policy.audience === Audience.ADMIN_OR_SELF && !req.stream) {
      if (fieldAt(req.message, policy.selfField) !== caller.userId) throw denied("you may only access your own user");
      if (policy.selfUpdatableFields.length > 0) {
        const paths = (fieldAt(req.message, "update_mask.paths") as string[] | undefined) ?? [];
        const forbidden = paths.filter((p) => !policy.selfUpdatableFields.includes(p));
        if (forbidden.length > 0) {
          throw denied(
            `you may only change ${policy.selfUpdatableFields.join(" and ")} of your own user, not ${forbidden.join(", ")}`,
          );
        }
      }
      return next(req);
    }
    throw denied("not allowed");
  };
}
