/**
 * A user's history, for an admin: ListUserChanges newest first, each change with who made it (a user with a
 * token, one of its API keys, or the service itself), from where, and which fields it changed. Actors are
 * shown by email (one BatchGetUsers per page; ids when that fails). A dialog over the users table.
 */
import type { Actor } from "../../gen/user/v1/actor_pb.js";
import { ActorKind } from "../../gen/user/v1/actor_pb.js";
import type { User } from "../../gen/user/v1/user_pb.js";
import { type UserChange, WatchEventType } from "../../gen/user/v1/user_service_pb.js";
import type { Api } from "./api.ts";
import { openDialog } from "./dialog.ts";
import { h } from "./dom.ts";
import { explain } from "./errors.ts";
import { formatTime, formatWhen } from "./format.ts";

const typeLabels: ReadonlyMap<WatchEventType, string> = new Map([
  [WatchEventType.CREATED, "created"],
  [WatchEventType.UPDATED, "updated"],
  [WatchEventType.DELETED, "deleted"],
  [WatchEventType.UNDELETED, "undeleted"],
]);

/** Who made a change, in words: `ada@example.com`, `ada@example.com (API key)`, `the service`. */
function actorText(actor: Actor | undefined, emails: ReadonlyMap<string, string>): string {
  if (!actor || actor.kind === ActorKind.UNSPECIFIED) return "not recorded";
  if (actor.kind === ActorKind.SYSTEM) return "the service";
  const who = emails.get(actor.userId) ?? actor.userId;
  return actor.kind === ActorKind.API_KEY ? `${who} (API key)` : who;
}

/** Opens the history of `user`. */
export function openHistory(opts: { api: () => Api; apiBaseUrl: string; user: User }): void {
  const { api, user } = opts;
  const notice = h("div", { class: "notice", role: "status" });
  const tbody = h("tbody");
  const more = h("button", { type: "button", onclick: () => void load() }, "More");
  let next = "";

  async function emailsOf(changes: readonly UserChange[]): Promise<Map<string, string>> {
    const ids = [...new Set(changes.map((c) => c.actor?.userId ?? "").filter((id) => id !== ""))];
    if (ids.length === 0) return new Map();
    try {
      const res = await api().users.batchGetUsers({ userIds: ids });
      return new Map(res.users.map((u) => [u.id, u.email]));
    } catch {
      return new Map(); // shown by id
    }
  }

  function rowOf(c: UserChange, emails: ReadonlyMap<string, string>): HTMLTableRowElement {
    return h(
      "tr",
      { "data-event-id": c.eventId },
      h("td", { class: "nowrap", title: formatTime(c.changeTime) }, formatWhen(c.changeTime)),
      h(
        "td",
        { "data-col": "type" },
        h("span", { class: `verb ${typeLabels.get(c.type) ?? ""}` }, typeLabels.get(c.type) ?? ""),
      ),
      h("td", { "data-col": "changed_fields" }, c.changedFields.join(", ")),
      h("td", { "data-col": "actor" }, actorText(c.actor, emails)),
      h("td", { "data-col": "client_address", class: "muted" }, c.actor?.clientAddress ?? ""),
    );
  }

  async function load() {
    try {
      const res = await api().users.listUserChanges({ userId: user.id, pageToken: next, pageSize: 20 });
      const emails = await emailsOf(res.changes);
      tbody.append(...res.changes.map((c) => rowOf(c, emails)));
      if (tbody.children.length === 0)
        tbody.append(h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, "No changes recorded.")));
      next = res.nextPageToken;
      more.hidden = next === "";
    } catch (err) {
      notice.className = "notice error";
      notice.textContent = explain(err, opts.apiBaseUrl).message;
    }
  }

  openDialog(
    `History of ${user.email}`,
    notice,
    h(
      "table",
      { class: "users-table" },
      h("thead", {}, h("tr", {}, ...["When", "What", "Fields", "By", "From"].map((t) => h("th", { scope: "col" }, t)))),
      tbody,
    ),
    h("div", { class: "pager" }, more),
  );
  void load();
}
