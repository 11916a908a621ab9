/** The rows of the users table and the actions each row offers, by the user's state. */
import { type User, UserKind, UserState } from "../../gen/user/v1/user_pb.js";
import { h } from "./dom.ts";
import { formatLabels, formatTime, formatWhen, roleLabels, stateLabels } from "./format.ts";
import type { QuickAction } from "./user-actions.ts";

/** Row actions: editing opens the form, the others run at once. */
export type UserAction = "edit" | "access" | "history" | QuickAction;

const actionsFor: Record<UserState, UserAction[]> = {
  [UserState.UNSPECIFIED]: [],
  [UserState.ACTIVE]: ["edit", "access", "history", "suspend", "delete"],
  [UserState.SUSPENDED]: ["edit", "access", "history", "activate", "delete"],
  [UserState.DELETED]: ["history", "undelete"],
};

const actionLabels: Record<UserAction, string> = {
  edit: "Edit",
  access: "Access",
  history: "History",
  suspend: "Suspend",
  activate: "Activate",
  delete: "Delete",
  undelete: "Undelete",
};

/** The header row. */
export function tableHead(): HTMLTableSectionElement {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      ...["Email", "Name", "Role", "State", "Labels", "Updated", ""].map((t) => h("th", { scope: "col" }, t)),
    ),
  );
}

/** One row; `flash` marks a row a change just arrived for. */
export function userRow(
  user: User,
  flash: boolean,
  act: (action: UserAction, user: User) => void,
): HTMLTableRowElement {
  const state = stateLabels.get(user.state) ?? "Unknown";
  return h(
    "tr",
    { "data-user-id": user.id, "data-email": user.email, class: flash ? "flash" : undefined },
    h(
      "td",
      { "data-col": "email" },
      user.email,
      user.kind === UserKind.SERVICE ? h("span", { class: "badge service" }, "service") : null,
    ),
    h("td", { "data-col": "display_name" }, user.displayName),
    h("td", { "data-col": "role" }, roleLabels.get(user.role) ?? ""),
    h("td", { "data-col": "state" }, h("span", { class: `badge ${state.toLowerCase()}` }, state)),
    h("td", { "data-col": "labels", class: "labels" }, formatLabels(user.labels)),
    h(
      "td",
      { "data-col": "update_time", class: "muted nowrap", title: formatTime(user.updateTime) },
      formatWhen(user.updateTime),
    ),
    h(
      "td",
      { class: "row-actions" },
      ...actionsFor[user.state].map((a) =>
        h(
          "button",
          { type: "button", class: a === "delete" ? "danger" : undefined, onclick: () => act(a, user) },
          actionLabels[a],
        ),
      ),
    ),
  );
}
