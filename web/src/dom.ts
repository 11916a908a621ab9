/**
 * A tiny element builder, so the console needs no UI framework. Text always goes in as text nodes (never
 * innerHTML), so values from the service, emails and labels included, cannot inject markup.
 */

/** Attribute values; functions under `on<event>` keys become listeners, false/null/undefined are left out. */
type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;

/** What may go inside an element; false/null/undefined are skipped so conditions read inline. */
export type Child = Node | string | number | false | null | undefined;

// Set as properties after the children exist: a <select>'s value only sticks once its options are there.
const properties = new Set(["value", "checked"]);

/** Creates an element with attributes, listeners and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  const later: [string, unknown][] = [];
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (properties.has(key)) later.push([key, value]);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  for (const [key, value] of later) Reflect.set(el, key, value);
  return el;
}

/** Appends children, skipping the empty ones. */
function append(parent: Element | DocumentFragment, children: readonly Child[]): void {
  for (const c of children) {
    if (c === false || c === null || c === undefined) continue;
    parent.append(typeof c === "number" ? String(c) : c);
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
