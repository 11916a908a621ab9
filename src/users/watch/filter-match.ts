/**
 * Evaluates a parsed filter against a user snapshot in memory, with the same meaning as its SQL form
 * (src/users/list/filter.sql.ts): WatchUsers matches every change against every watcher's filter without a
 * query. Email compares lowercased; ordering on text is code-point order (SQL `collate "C"`); times compare
 * as instants; a missing label matches only `!=`.
 */
import type { UserSnapshot } from "../../changes/change-log.ts";
import type { Comparator, Condition, Filter } from "../list/index.ts";

/**
 * A UTF-16 code unit moved so that code-unit order becomes code-point order: JavaScript's `<` compares
 * code units, which puts U+E000..U+FFFF after every astral character (a surrogate), while `collate "C"`
 * on UTF-8 sorts by code point (ListUsers would say "😀" > "\uFFFD" and a watcher the opposite).
 */
const inCodePointOrder = (c: number) => (c >= 0xe000 ? c - 0x800 : c >= 0xd800 ? c + 0x2000 : c);

function compare(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return inCodePointOrder(x) < inCodePointOrder(y) ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function holds(cmp: Comparator, order: number): boolean {
  switch (cmp) {
    case "=":
      return order === 0;
    case "!=":
      return order !== 0;
    case "<":
      return order < 0;
    case "<=":
      return order <= 0;
    case ">":
      return order > 0;
    case ">=":
      return order >= 0;
    case ":":
      return false;
  }
}

/** Microseconds since the epoch of an RFC 3339 time with up to microsecond precision. */
function micros(time: string): number {
  const m = /^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i.exec(time);
  if (!m) return Number.NaN;
  return Date.parse(`${m[1]}${m[3]}`) * 1000 + Number((m[2] ?? "").padEnd(6, "0").slice(0, 6));
}

function condition(c: Condition, u: UserSnapshot): boolean {
  switch (c.kind) {
    case "text": {
      const actual = c.field === "email" ? u.email.toLowerCase() : u.displayName;
      const wanted = c.field === "email" ? c.value.toLowerCase() : c.value;
      return c.cmp === ":" ? actual.includes(wanted) : holds(c.cmp, compare(actual, wanted));
    }
    case "enum":
      return holds(c.cmp, compare(c.field === "role" ? u.role : u.state, c.value));
    case "time": {
      const actual = micros(c.field === "create_time" ? u.createTime : u.updateTime);
      return holds(c.cmp, Math.sign(actual - micros(c.value)));
    }
    case "label": {
      const v = Object.hasOwn(u.labels, c.key) ? u.labels[c.key] : undefined;
      if (v === undefined) return c.cmp === "!=";
      return c.cmp === ":" ? v.includes(c.value) : holds(c.cmp, compare(v, c.value));
    }
    case "label_present":
      return Object.hasOwn(u.labels, c.key);
  }
}

/** True when the user satisfies the filter (always, for no filter). */
export function matchesFilter(filter: Filter | null, user: UserSnapshot): boolean {
  if (filter === null) return true;
  switch (filter.kind) {
    case "and":
      return filter.args.every((f) => matchesFilter(f, user));
    case "or":
      return filter.args.some((f) => matchesFilter(f, user));
    case "not":
      return !matchesFilter(filter.arg, user);
    default:
      return condition(filter, user);
  }
}
