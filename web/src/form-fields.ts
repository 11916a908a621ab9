/**
 * Form fields with a place for their error right under them, and the one function that puts field
 * violations there, so every form shows the service's errors the same way.
 */
import { type Child, h } from "./dom.ts";
import { explain } from "./errors.ts";

/** A labelled control with its error slot; `name` is the key field violations are matched on. */
export function field(
  label: string,
  name: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: Child,
): HTMLElement {
  const errorId = `error-${name}`;
  control.name = name;
  control.id = `field-${name}`;
  control.setAttribute("aria-describedby", errorId);
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
    h("small", { class: "field-error", id: errorId, "data-error-for": name, "aria-live": "polite" }),
  );
}

/**
 * Shows `errors` next to their fields in `form` and clears the others. Returns the errors that have no
 * field in this form, for the form-level message.
 */
export function showFieldErrors(form: HTMLFormElement, errors: ReadonlyMap<string, string>): string[] {
  const unplaced = new Map(errors);
  for (const slot of form.querySelectorAll<HTMLElement>("[data-error-for]")) {
    const name = slot.dataset.errorFor ?? "";
    const text = errors.get(name) ?? "";
    slot.textContent = text;
    const control = form.elements.namedItem(name);
    if (control instanceof HTMLElement) {
      if (text) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
    unplaced.delete(name);
  }
  return [...unplaced].map(([name, text]) => `${name}: ${text}`);
}

/** What `onCreate` needs: the form, its submit button, and where a message goes. */
export interface CreateForm {
  form: HTMLFormElement;
  submit: HTMLButtonElement;
  apiBaseUrl: string;
  say(text: string, kind?: "info" | "error"): void;
}

/**
 * Runs `create` on submit: the button disabled meanwhile and the field errors cleared first; a failure's
 * field violations go next to their fields (a repeated field's `name[2]` to `name`), the rest to `say`.
 */
export function onCreate(f: CreateForm, create: () => Promise<void>): void {
  f.form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    f.submit.disabled = true;
    showFieldErrors(f.form, new Map());
    try {
      await create();
    } catch (err) {
      const why = explain(err, f.apiBaseUrl);
      const fields = new Map([...why.fields].map(([k, v]) => [k.replace(/\[\d+\]$/, ""), v]));
      const rest = showFieldErrors(f.form, fields);
      f.say([why.message, ...rest].join(" "), "error");
    } finally {
      f.submit.disabled = false;
    }
  });
}

/** Shows a secret the service returns only once (an API key, a webhook signing secret) in `box`. */
export function revealSecret(box: HTMLElement, what: string, testId: string, secret: string): void {
  box.replaceChildren(
    h("strong", {}, `Copy this ${what} now: it is shown only once.`),
    h("code", { "data-testid": testId }, secret),
  );
  box.hidden = false;
}
