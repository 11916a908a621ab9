/**
 * The one-click row actions: suspend and activate (UpdateUser on `state`), delete and undelete. Each
 * sends the etag the row was read with, so acting on a row someone else just changed is refused, not
 * applied to a user the person has not seen.
 */
import { type User, UserState } from "../../gen/user/v1/user_pb.js";
import type { Api } from "./api.ts";
import { explain } from "./errors.ts";

/** Row actions that need no form. */
export type QuickAction = "suspend" | "activate" | "delete" | "undelete";

/** What came of an action: the user as the service now has it, and a sentence for the notice line. */
export interface ActionResult {
  user?: User;
  message: string;
  failed: boolean;
}

const done: Record<QuickAction, string> = {
  suspend: "suspended",
  activate: "activated",
  delete: "deleted",
  undelete: "undeleted",
};

function call(api: Api, action: QuickAction, user: User) {
  switch (action) {
    case "delete":
      return api.users.deleteUser({ userId: user.id, etag: user.etag });
    case "undelete":
      return api.users.undeleteUser({ userId: user.id });
    default:
      return api.users.updateUser({
        user: { id: user.id, etag: user.etag, state: action === "suspend" ? UserState.SUSPENDED : UserState.ACTIVE },
        updateMask: { paths: ["state"] },
      });
  }
}

/** Runs an action; on an etag conflict the current user is fetched so the row can show it. */
export async function runAction(api: Api, action: QuickAction, user: User, apiBaseUrl: string): Promise<ActionResult> {
  try {
    const res = await call(api, action, user);
    return { user: res.user, message: `${user.email}: ${done[action]}.`, failed: false };
  } catch (err) {
    const why = explain(err, apiBaseUrl);
    const fresh =
      why.reason === "ETAG_MISMATCH" ? await api.users.getUser({ userId: user.id }).catch(() => undefined) : undefined;
    const hint = fresh?.user ? " The row now shows the current values." : "";
    return { user: fresh?.user, message: `${user.email}: ${why.message}${hint}`, failed: true };
  }
}
