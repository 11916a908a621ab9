/**
 * The order_by field of ListUsers: a comma list of sortable fields, each optionally followed by `asc` or
 * `desc`. Parsed strictly, because a silently ignored typo would page in an order the caller did not ask
 * for. The id that breaks ties is not part of it; keyset.ts always appends it.
 */
import { OrderByError } from "./errors.ts";

/** The fields users can be sorted by. */
export type SortField = "create_time" | "update_time" | "email" | "display_name";

/** One key of the order. */
export interface SortKey {
  readonly field: SortField;
  readonly desc: boolean;
}

/** A parsed order_by: its keys, most significant first (ties then go by id ascending). */
export type OrderBy = readonly SortKey[];

const FIELDS: readonly string[] = ["create_time", "update_time", "email", "display_name"] satisfies SortField[];

/** The contract's default, `create_time`. */
export const DEFAULT_ORDER: OrderBy = [{ field: "create_time", desc: false }];

/** Id order alone: what StreamUsers pages by internally. */
export const ID_ORDER: OrderBy = [];

function isSortField(word: string): word is SortField {
  return FIELDS.includes(word);
}

function parseItem(item: string, index: number): SortKey {
  const words = item.trim().split(/\s+/);
  const [field, direction, extra] = words;
  if (field === "") throw new OrderByError(`item ${index + 1} is empty`);
  if (!isSortField(field)) {
    throw new OrderByError(`unknown field "${field}"; sortable fields are ${FIELDS.join(", ")}`);
  }
  if (direction !== undefined && direction !== "asc" && direction !== "desc") {
    throw new OrderByError(`expected "asc" or "desc" after "${field}", found "${direction}"`);
  }
  if (extra !== undefined) throw new OrderByError(`unexpected "${extra}" after "${field} ${direction}"`);
  return { field, desc: direction === "desc" };
}

/** Parses order_by; blank means DEFAULT_ORDER. Throws OrderByError naming the offending item. */
export function parseOrderBy(text: string): OrderBy {
  if (text.trim() === "") return DEFAULT_ORDER;
  const keys = text.split(",").map(parseItem);
  const seen = new Set<SortField>();
  for (const key of keys) {
    if (seen.has(key.field)) throw new OrderByError(`"${key.field}" appears more than once`);
    seen.add(key.field);
  }
  return keys;
}

/** One spelling per order (`email desc,create_time`), so equivalent order_by strings bind page tokens alike. */
export function formatOrderBy(order: OrderBy): string {
  return order.map((k) => (k.desc ? `${k.field} desc` : k.field)).join(",");
}
