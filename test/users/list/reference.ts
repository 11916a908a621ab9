/**
 * What the filter and order_by mean, written independently of the SQL translation, in plain JavaScript
 * over TestUser, so the database tests can check that the SQL returns exactly these users in this order.
 */
import type { Condition, Filter, OrderBy } from "../../../src/users/list/index.ts";
import type { TestUser } from "./users.fixture.ts";

/** Code point order (what collate "C" gives on UTF-8). */
export function compareText(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0) ?? 0);
  const y = Array.from(b, (c) => c.codePointAt(0) ?? 0);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** Epoch microseconds of an RFC 3339 time with any offset. */
export function micros(time: string): bigint {
  const m = /^(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (!m) throw new Error(`not a time: ${time}`);
  return BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1000n + BigInt((m[2] ?? "").padEnd(6, "0"));
}

function compare(cmp: string, order: number): boolean {
  return (
    { "=": order === 0, "!=": order !== 0, "<": order < 0, "<=": order <= 0, ">": order > 0, ">=": order >= 0 }[cmp] ??
    false
  );
}

function holds(c: Condition, u: TestUser): boolean {
  switch (c.kind) {
    case "text": {
      const [have, want] =
        c.field === "email" ? [u.email.toLowerCase(), c.value.toLowerCase()] : [u.display_name, c.value];
      return c.cmp === ":" ? have.includes(want) : compare(c.cmp, compareText(have, want));
    }
    case "enum":
      return (u[c.field] === c.value) === (c.cmp === "=");
    case "time": {
      const have = u[c.field];
      const want = micros(c.value);
      return compare(c.cmp, have < want ? -1 : have > want ? 1 : 0);
    }
    case "label": {
      const have = u.labels[c.key];
      if (have === undefined) return c.cmp === "!=";
      return c.cmp === ":" ? have.includes(c.value) : compare(c.cmp, compareText(have, c.value));
    }
    case "label_present":
      return Object.hasOwn(u.labels, c.key);
  }
}

/** Whether a user matches a parsed filter (null matches all). */
export function matches(filter: Filter | null, u: TestUser): boolean {
  if (filter === null) return true;
  switch (filter.kind) {
    case "and":
      return filter.args.every((f) => matches(f, u));
    case "or":
      return filter.args.some((f) => matches(f, u));
    case "not":
      return !matches(filter.arg, u);
    default:
      return holds(filter, u);
  }
}

/** The order of an order_by, ties by id ascending. */
export function comparator(order: OrderBy): (a: TestUser, b: TestUser) => number {
  const key = (u: TestUser, field: OrderBy[number]["field"]): string | bigint =>
    field === "email" ? u.email.toLowerCase() : field === "display_name" ? u.display_name : u[field];
  return (a, b) => {
    for (const { field, desc } of order) {
      const [x, y] = [key(a, field), key(b, field)];
      const c =
        typeof x === "bigint" ? (x < (y as bigint) ? -1 : x > (y as bigint) ? 1 : 0) : compareText(x, y as string);
      if (c !== 0) return desc ? -c : c;
    }
    return compareText(a.id, b.id);
  };
}
