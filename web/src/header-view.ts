/** The bar across the top: who you are, which protocol the console speaks, and signing out. */
import type { User } from "../../gen/user/v1/user_pb.js";
import { h } from "./dom.ts";
import { roleLabels } from "./format.ts";
import type { Settings } from "./settings.ts";
import { transportSelect } from "./transport-select.ts";

/** What the header needs. */
export interface HeaderOptions {
  user: User;
  settings: Settings;
  changeSettings(next: Settings): void;
  logout(): void;
  /** Opens the signed-in person's sessions. */
  mySessions(): void;
  /** Opens the webhooks (admins). */
  webhooks(): void;
}

/** Builds the header. */
export function headerView(opts: HeaderOptions): HTMLElement {
  const { user } = opts;
  const service =
    opts.settings.apiBaseUrl === location.origin
      ? null
      : h("span", { class: "muted" }, ` · ${opts.settings.apiBaseUrl}`);
  return h(
    "header",
    { class: "topbar" },
    h("strong", { class: "brand" }, "User service"),
    h(
      "span",
      { class: "whoami", "data-testid": "whoami" },
      "Signed in as ",
      h("strong", {}, user.displayName),
      ` <${user.email}> · ${roleLabels.get(user.role) ?? "No role"}`,
      service,
    ),
    h("span", { class: "spacer" }),
    transportSelect(opts.settings, opts.changeSettings),
    h("button", { type: "button", onclick: () => opts.webhooks() }, "Webhooks"),
    h("button", { type: "button", onclick: () => opts.mySessions() }, "My sessions"),
    h("button", { type: "button", onclick: () => opts.logout() }, "Sign out"),
  );
}
