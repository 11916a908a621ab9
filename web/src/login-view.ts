/**
 * The sign-in form. The service address is part of it because the console can run on another origin; when
 * it differs from the page's own origin the form says so plainly, since a link with `?api=` decides where
 * the password is sent.
 */
import { h } from "./dom.ts";
import { explain } from "./errors.ts";
import { field, showFieldErrors } from "./form-fields.ts";
import { parseBaseUrl, type Settings } from "./settings.ts";
import { transportSelect } from "./transport-select.ts";

/** What the form needs. */
export interface LoginViewOptions {
  settings: Settings;
  /** Why the previous session ended, if the service ended it. */
  notice?: string;
  login(email: string, password: string): Promise<void>;
  changeSettings(next: Settings): void;
}

/** Builds the sign-in view. */
export function loginView(opts: LoginViewOptions): HTMLElement {
  const email = h("input", { type: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true });
  const service = h("input", { type: "url", value: opts.settings.apiBaseUrl });
  const formError = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const elsewhere = opts.settings.apiBaseUrl !== location.origin;

  const form = h(
    "form",
    { class: "card login", novalidate: true, "aria-label": "Sign in" },
    h("h1", {}, "User service console"),
    opts.notice ? h("p", { class: "notice info" }, opts.notice) : null,
    field("Email", "email", email),
    field("Password", "password", password),
    h(
      "details",
      { class: "connection", open: elsewhere },
      h("summary", {}, "Connection"),
      field(
        "Service",
        "service",
        service,
        elsewhere ? `Your password goes to ${opts.settings.apiBaseUrl}, not to ${location.origin}.` : null,
      ),
      transportSelect(opts.settings, opts.changeSettings),
    ),
    formError,
    submit,
  );

  service.addEventListener("change", () => {
    const apiBaseUrl = parseBaseUrl(service.value);
    if (apiBaseUrl === undefined)
      showFieldErrors(form, new Map([["service", "must be an http:// or https:// address"]]));
    else if (apiBaseUrl !== opts.settings.apiBaseUrl) opts.changeSettings({ ...opts.settings, apiBaseUrl });
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    formError.textContent = "";
    showFieldErrors(form, new Map());
    try {
      await opts.login(email.value.trim(), password.value);
    } catch (err) {
      const why = explain(err, opts.settings.apiBaseUrl);
      formError.textContent = [why.message, ...showFieldErrors(form, why.fields)].join(" ");
      submit.disabled = false;
    }
  });
  queueMicrotask(() => email.focus());
  return h("main", { class: "center" }, form);
}
