/**
 * Turns a parsed filter into a PostgreSQL condition on the users table. Every literal becomes a
 * placeholder; every condition is two-valued (never NULL), so NOT is the exact complement of what it wraps.
 *
 * - email compares on lower(email), the expression the unique email index uses; display_name is exact.
 * - Ordering comparisons on text use collate "C" (code point order), the same order that ORDER BY and the
 *   keyset use, so results never depend on the database's locale.
 * - `:` is LIKE with %, _ and \ escaped in the value.
 * - Label equality is `labels @> {key: value}` (a GIN index on labels can serve it); everything else reads
 *   the label with `labels ->> $n`. The jsonb `?` operator is avoided on purpose: drivers that use `?` as
 *   a placeholder would rewrite it.
 */
import type { Condition, Filter, LabelCondition, Ordering, TextCondition } from "./filter.ast.ts";
import type { SqlParams } from "./sql-params.ts";

const SQL_OPS: Record<Ordering, string> = { "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=" };

/** Escapes LIKE's wildcards so the value matches literally, then wraps it for "contains". */
function containsPattern(value: string): string {
  return `%${value.replace(/[\\%_]/g, "\\$&")}%`;
}

function text(c: TextCondition, p: SqlParams): string {
  const email = c.field === "email";
  const column = email ? "lower(email)" : "display_name";
  const arg = (v: string) => (email ? `lower(${p.add(v)})` : p.add(v));
  if (c.cmp === ":") return `${column} like ${arg(containsPattern(c.value))} escape '\\'`;
  if (c.cmp === "=" || c.cmp === "!=") return `${column} ${SQL_OPS[c.cmp]} ${arg(c.value)}`;
  return `${column} collate "C" ${SQL_OPS[c.cmp]} ${arg(c.value)}`;
}

function label(c: LabelCondition, p: SqlParams): string {
  if (c.cmp === "=" || c.cmp === "!=") {
    const contains = `labels @> jsonb_build_object(${p.add(c.key)}::text, ${p.add(c.value)}::text)`;
    return c.cmp === "=" ? contains : `not (${contains})`;
  }
  const read = `(labels ->> ${p.add(c.key)}::text)`;
  if (c.cmp === ":") return `coalesce(${read} like ${p.add(containsPattern(c.value))} escape '\\', false)`;
  return `coalesce(${read} collate "C" ${SQL_OPS[c.cmp]} ${p.add(c.value)}, false)`;
}

function condition(c: Condition, p: SqlParams): string {
  switch (c.kind) {
    case "text":
      return text(c, p);
    case "enum":
      return `${c.field} ${SQL_OPS[c.cmp]} ${p.add(c.value)}`;
    case "time":
      return `${c.field} ${SQL_OPS[c.cmp]} ${p.add(c.value)}::timestamptz`;
    case "label":
      return label(c, p);
    case "label_present":
      return `(labels ->> ${p.add(c.key)}::text) is not null`;
  }
}

/** The SQL condition for a filter (`true` for none), its values added to `params`. Always parenthesized. */
export function filterSql(filter: Filter | null, params: SqlParams): string {
  if (filter === null) return "true";
  switch (filter.kind) {
    case "and":
    case "or":
      return `(${filter.args.map((f) => filterSql(f, params)).join(` ${filter.kind} `)})`;
    case "not":
      return `(not ${filterSql(filter.arg, params)})`;
    default:
      return `(${condition(filter, params)})`;
  }
}
