/**
 * Form fields with a place for their error right under them, and the one function that puts field
 * violations there, so every form shows the service's errors the same way.
 */
import { type Child, h } from "./dom.ts";

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
