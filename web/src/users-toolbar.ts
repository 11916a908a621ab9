/**
 * The list's controls: a filter in the contract's filter language (AIP-160: `email:"@example.com" AND
 * role = ROLE_ADMIN`), the order, the page size and whether deleted users show. The service judges the
 * filter; its INVALID_FILTER message is shown under the box.
 */
import { h } from "./dom.ts";

/** What the list asks ListUsers for. */
export interface ListQuery {
  filter: string;
  orderBy: string;
  pageSize: number;
  showDeleted: boolean;
}

/** The toolbar and the one thing the page tells it back. */
export interface Toolbar {
  readonly element: HTMLElement;
  /** Shows (or, with "", clears) the service's complaint about the filter. */
  showFilterError(message: string): void;
}

const orders = [
  ["create_time desc", "Newest first"],
  ["create_time", "Oldest first"],
  ["update_time desc", "Recently updated"],
  ["email", "Email A–Z"],
  ["email desc", "Email Z–A"],
  ["display_name", "Name A–Z"],
] as const;

/**
 * Builds the toolbar; `onChange` gets the new query, and whether it came from Apply (a new filter, or the
 * same one again, which is also how a person retries after an error).
 */
export function usersToolbar(query: ListQuery, onChange: (query: ListQuery, filterChanged: boolean) => void): Toolbar {
  const filter = h("input", {
    type: "search",
    id: "filter",
    name: "filter",
    value: query.filter,
    placeholder: 'e.g. email:"example.com" AND role = ROLE_ADMIN',
    spellcheck: "false",
  });
  const filterError = h("small", { class: "field-error", "data-error-for": "filter", "aria-live": "polite" });
  const order = h("select", { value: query.orderBy }, ...orders.map(([v, label]) => h("option", { value: v }, label)));
  const pageSize = h(
    "select",
    { value: String(query.pageSize) },
    ...[10, 25, 50, 100].map((n) => h("option", { value: n }, n)),
  );
  const showDeleted = h("input", { type: "checkbox", checked: query.showDeleted });
  // The filter takes effect on Apply (Enter); the other controls at once, with the filter last applied.
  let applied = query.filter;
  const current = (): ListQuery => ({
    filter: applied,
    orderBy: order.value,
    pageSize: Number(pageSize.value),
    showDeleted: showDeleted.checked,
  });
  for (const control of [order, pageSize, showDeleted])
    control.addEventListener("change", () => onChange(current(), false));

  const element = h(
    "form",
    {
      class: "toolbar",
      role: "search",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        applied = filter.value.trim();
        onChange(current(), true);
      },
    },
    h("div", { class: "field grow" }, h("label", { for: "filter" }, "Filter"), filter, filterError),
    h("button", { type: "submit" }, "Apply"),
    h("label", { class: "inline" }, "Order ", order),
    h("label", { class: "inline" }, "Per page ", pageSize),
    h("label", { class: "inline" }, showDeleted, " Show deleted"),
  );
  return {
    element,
    showFilterError(message) {
      filterError.textContent = message;
      if (message) filter.setAttribute("aria-invalid", "true");
      else filter.removeAttribute("aria-invalid");
    },
  };
}
