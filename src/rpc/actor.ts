/**
 * Who made a change, and from where: what the change log records with every change (docs/adr/0022). Built by
 * the handler from the call's context and passed explicitly to the write; a write with no caller (the admin
 * bootstrap) is the system.
 */
import type { HandlerContext } from "@connectrpc/connect";
import { kCaller, kClientAddress, kRequestId } from "./context.ts";

export interface Actor {
  kind: "user" | "api_key" | "system";
  /** The user who made it (the key's user for an API key). Absent for the system, or for `self`. */
  userId?: string;
  apiKeyId?: string;
  clientAddress?: string;
  requestId?: string;
  /** The user changed is the actor (a sign-up, a password reset by code): its id is filled in by the write. */
  self?: boolean;
}

/** The service itself. */
export const SYSTEM_ACTOR: Actor = { kind: "system" };

/**
 * The actor of a call: its caller (a user with a JWT, or an API key), or, on a public method (sign-up, a
 * code redeemed), the user the call changes. The client address and request id of the call either way.
 */
export function actorOf(ctx: HandlerContext): Actor {
  const caller = ctx.values.get(kCaller);
  const where = {
    clientAddress: ctx.values.get(kClientAddress) || undefined,
    requestId: ctx.values.get(kRequestId) || undefined,
  };
  if (!caller) return { kind: "user", self: true, ...where };
  if (caller.apiKeyId) return { kind: "api_key", userId: caller.userId, apiKeyId: caller.apiKeyId, ...where };
  return { kind: "user", userId: caller.userId, ...where };
}
