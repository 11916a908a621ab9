/**
 * The create and edit dialog. The service is the judge of every value (the form sets `novalidate`), and
 * its field violations appear under the fields they name. Edits send only the fields that changed, with
 * the etag the user was read with, so a change someone else made meanwhile is reported, not overwritten.
 */
import { Role, type User, UserKind, UserState } from "../../gen/user/v1/user_pb.js";
import type { Api } from "./api.ts";
import { h } from "./dom.ts";
import { explain, outcomeUnknown } from "./errors.ts";
import { field, showFieldErrors } from "./form-fields.ts";
import { formatLabels, parseLabels, roleLabels, stateLabels } from "./format.ts";
import { uuid } from "./request-id.ts";

/** What the dialog needs. */
export interface UserFormOptions {
  api: () => Api;
  apiBaseUrl: string;
  /** The user to edit; absent to create one. */
  user?: User;
  /** Called with what the service answered. */
  onSaved(user: User): void;
}

const options = <T extends number>(labels: ReadonlyMap<T, string>, only?: T[]) =>
  [...labels].filter(([v]) => !only || only.includes(v)).map(([v, label]) => h("option", { value: v }, label));

/** Opens the dialog; it removes itself when closed. */
export function openUserForm(opts: UserFormOptions): void {
  let original = opts.user;
  const email = h("input", { type: "email", autocomplete: "off" });
  const displayName = h("input", { type: "text", autocomplete: "off" });
  const role = h("select", {}, ...options(roleLabels));
  const state = h("select", {}, ...options(stateLabels, [UserState.ACTIVE, UserState.SUSPENDED]));
  const labels = h("input", { type: "text", autocomplete: "off", placeholder: "team=core, tier=gold" });
  const password = h("input", { type: "password", autocomplete: "new-password" });
  const kind = h(
    "select",
    {},
    h("option", { value: UserKind.HUMAN }, "Person"),
    h("option", { value: UserKind.SERVICE }, "Service account (API keys only)"),
  );
  const formError = h("div", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, original ? "Save" : "Create");

  const fill = (u: User | undefined) => {
    email.value = u?.email ?? "";
    displayName.value = u?.displayName ?? "";
    role.value = String(u?.role ?? Role.USER);
    state.value = String(u?.state === UserState.SUSPENDED ? UserState.SUSPENDED : UserState.ACTIVE);
    labels.value = formatLabels(u?.labels ?? {});
  };

  const form = h(
    "form",
    { method: "dialog", novalidate: true },
    h("h2", {}, original ? `Edit ${original.email}` : "New user"),
    field("Email", "email", email),
    field("Display name", "display_name", displayName),
    field("Role", "role", role),
    original && original.state !== UserState.DELETED ? field("State", "state", state) : null,
    field("Labels", "labels", labels, "key=value, separated by commas; keys are lowercase: a-z, 0-9, _ . -"),
    original ? null : field("Kind", "kind", kind),
    original
      ? null
      : field("Password", "password", password, "Optional, 8 to 128 characters; without one the user cannot sign in."),
    formError,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"), submit),
  );
  const dialog = h("dialog", { class: "card", "aria-label": original ? "Edit user" : "New user" }, form);
  dialog.addEventListener("close", () => dialog.remove());
  fill(original);

  const showError = (err: unknown) => {
    const why = explain(err, opts.apiBaseUrl);
    const rest = showFieldErrors(form, why.fields);
    const parts = [h("span", {}, [why.message, ...rest].join(" "))];
    if (why.reason === "ETAG_MISMATCH" && original)
      parts.push(h("button", { type: "button", onclick: () => void reload() }, "Reload"));
    formError.replaceChildren(...parts);
  };

  async function reload() {
    if (!original) return;
    try {
      const res = await opts.api().users.getUser({ userId: original.id });
      original = res.user;
      fill(original);
      showFieldErrors(form, new Map());
      formError.replaceChildren(
        h("span", { class: "info" }, "Reloaded: the form shows the current values. Apply your changes again."),
      );
    } catch (err) {
      showError(err);
    }
  }

  // A create is retried with the same request id only when its outcome is unknown and nothing changed.
  let pending: { id: string; body: string } | undefined;

  async function save(): Promise<User | undefined> {
    const parsed = parseLabels(labels.value);
    if ("error" in parsed) {
      showFieldErrors(form, new Map([["labels", parsed.error]]));
      return undefined;
    }
    const values = {
      email: email.value.trim(),
      displayName: displayName.value.trim(),
      role: Number(role.value) as Role,
      labels: parsed.labels,
    };
    if (!original) {
      const isService = Number(kind.value) === UserKind.SERVICE;
      const body = JSON.stringify([values, password.value, kind.value]);
      const requestId = pending?.body === body ? pending.id : uuid();
      pending = { id: requestId, body };
      try {
        const res = await opts.api().users.createUser({
          user: { ...values, kind: Number(kind.value) as UserKind },
          password: (!isService && password.value) || undefined,
          requestId,
        });
        return res.user;
      } catch (err) {
        if (!outcomeUnknown(err)) pending = undefined;
        throw err;
      }
    }
    const changed: string[] = [];
    if (values.email !== original.email) changed.push("email");
    if (values.displayName !== original.displayName) changed.push("display_name");
    if (values.role !== original.role) changed.push("role");
    if (formatLabels(values.labels) !== formatLabels(original.labels)) changed.push("labels");
    const nextState = Number(state.value) as UserState;
    if (original.state !== UserState.DELETED && nextState !== original.state) changed.push("state");
    if (changed.length === 0) return original;
    const res = await opts.api().users.updateUser({
      user: { ...values, id: original.id, etag: original.etag, state: nextState },
      updateMask: { paths: changed },
    });
    return res.user;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    formError.replaceChildren();
    showFieldErrors(form, new Map());
    try {
      const saved = await save();
      if (saved) {
        opts.onSaved(saved);
        dialog.close();
      }
    } catch (err) {
      showError(err);
    } finally {
      submit.disabled = false;
    }
  });

  document.body.append(dialog);
  dialog.showModal();
  email.focus();
}
