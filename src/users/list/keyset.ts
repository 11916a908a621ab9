/**
 * Keyset paging: the ORDER BY of an order, the values a row contributes to the next page's position, and
 * the "after this row" condition. Position values travel as text that round-trips exactly:
 *
 * - create_time/update_time as RFC 3339 UTC with 6 fractional digits (`2026-01-02T03:04:05.123456Z`),
 *   formatted by PostgreSQL itself (`to_char`), so microseconds survive, unlike a JavaScript Date, and
 *   DateStyle/TimeZone settings do not matter;
 * - email as lower(email), display_name as is, id as the uuid text.
 *
 * Text keys sort with collate "C" (code point order) in ORDER BY and in the keyset alike; the two must
 * agree or pages would skip or repeat rows.
 */
import type { OrderBy, SortField } from "./order-by.ts";
import type { SqlParams } from "./sql-params.ts";

/** Where the next page starts: the sort-key values of the last row sent, then its id. */
export interface Cursor {
  readonly keys: readonly string[];
  readonly id: string;
}

interface KeySql {
  /** The expression ORDER BY and the keyset compare. */
  readonly expr: string;
  /** The type a position value is cast to. */
  readonly cast: string;
  /** The expression that reads the position value from a row, as text. */
  readonly select: string;
}

const utcText = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const KEYS: Record<SortField | "id", KeySql> = {
  create_time: { expr: "create_time", cast: "timestamptz", select: utcText("create_time") },
  update_time: { expr: "update_time", cast: "timestamptz", select: utcText("update_time") },
  email: { expr: 'lower(email) collate "C"', cast: "text", select: "lower(email)" },
  display_name: { expr: 'display_name collate "C"', cast: "text", select: "display_name" },
  id: { expr: "id", cast: "uuid", select: "id::text" },
};

/** The row column `sortKeySelect` puts the i-th key in; the id goes in `sort_key_id`. */
const column = (i: number) => `sort_key_${i}`;

function withId(order: OrderBy): { key: KeySql; desc: boolean }[] {
  return [...order.map((k) => ({ key: KEYS[k.field], desc: k.desc })), { key: KEYS.id, desc: false }];
}

/** The ORDER BY list (without the keywords) for an order, id ascending last. */
export function orderBySql(order: OrderBy): string {
  return withId(order)
    .map(({ key, desc }) => `${key.expr} ${desc ? "desc" : "asc"}`)
    .join(", ");
}

/**
 * Select-list items (`expr as sort_key_0, ..., id::text as sort_key_id`) to add to the query, so each row
 * carries its position exactly as the keyset needs it; cursorFromRow reads them back.
 */
export function sortKeySelect(order: OrderBy): string {
  return [...order.map((k, i) => `${KEYS[k.field].select} as ${column(i)}`), `${KEYS.id.select} as sort_key_id`].join(
    ", ",
  );
}

/** The position of a row selected with sortKeySelect, to put in the next page token. */
export function cursorFromRow(order: OrderBy, row: Readonly<Record<string, unknown>>): Cursor {
  const text = (name: string): string => {
    const value = row[name];
    if (typeof value !== "string") throw new TypeError(`row has no text column ${name}; select sortKeySelect(order)`);
    return value;
  };
  return { keys: order.map((_, i) => text(column(i))), id: text("sort_key_id") };
}

/**
 * The condition "sorts after the cursor" (`true` without a cursor), for any mix of directions:
 * `k1 ≥ x1 AND (k1 > x1 OR (k1 = x1 AND k2 < x2) OR ... OR (k1 = x1 AND ... AND id > z))` (the first
 * bound repeats what the OR implies so an index on the first key can start the scan there).
 */
export function keysetSql(order: OrderBy, cursor: Cursor | null, params: SqlParams): string {
  if (cursor === null) return "true";
  const keys = withId(order);
  const values = [...cursor.keys, cursor.id].map((v, i) => `${params.add(v)}::${keys[i].key.cast}`);
  const after = keys.map(({ key, desc }, i) => {
    const equal = keys.slice(0, i).map((k, j) => `${k.key.expr} = ${values[j]}`);
    return `(${[...equal, `${key.expr} ${desc ? "<" : ">"} ${values[i]}`].join(" and ")})`;
  });
  if (keys.length === 1) return after[0];
  const first = keys[0];
  const bound = `${first.key.expr} ${first.desc ? "<=" : ">="} ${values[0]}`;
  return `(${bound} and (${after.join(" or ")}))`;
}
