/**
 * The filter of an event listing (ListUserChanges, ListAuthEvents): ListUsers' AIP-160 grammar
 * (`parseFilterWith`: same precedence and limits) over three fields every event log has:
 *
 * - `type`: an enum name (`WATCH_EVENT_TYPE_UPDATED`, `AUTH_EVENT_TYPE_LOGIN_FAILED`), bare or quoted; = and !=;
 * - `time`: a quoted RFC 3339 time (at most microseconds); =, !=, <, <=, >, >=;
 * - a user id field (`actor.user_id`, `user_id`): a quoted UUID, or "" for an event with no user; = and !=.
 *
 * Anything else is INVALID_FILTER. A listing gives its field name, enum names and columns; the SQL keeps
 * values as placeholders. The user id column may be NULL (an event with no user), so it is compared with
 * `is [not] distinct from` semantics and NOT stays the exact complement of what it wraps.
 */
import { FilterError } from "./errors.ts";
import type { FilterTree, Ordering } from "./filter.ast.ts";
import type { Restriction } from "./filter.fields.ts";
import { parseFilterWith } from "./filter.parser.ts";
import type { SqlParams } from "./sql-params.ts";
import { normalizeRfc3339 } from "./time-literal.ts";

/** One checked restriction on an event. */
export type EventCondition =
  | { readonly kind: "type"; readonly cmp: "=" | "!="; readonly value: string }
  | { readonly kind: "time"; readonly cmp: Ordering; readonly value: string }
  | { readonly kind: "user_id"; readonly cmp: "=" | "!="; readonly value: string };

/** A parsed filter; null matches every event. */
export type EventFilter = FilterTree<EventCondition> | null;

/** What a listing's events look like to its filter. */
export interface EventFilterSpec {
  /** The enum name of each type, as the filter is written, to the value stored in `typeColumn`. */
  types: Readonly<Record<string, string>>;
  /** The user id field's name in the filter (`user_id`, `actor.user_id`). */
  userField: string;
  typeColumn: string;
  timeColumn: string;
  /** A uuid column, NULL for an event with no user. */
  userColumn: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SQL_OPS: Record<Ordering, string> = { "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=" };

function equality(r: Restriction): "=" | "!=" {
  if (r.op.text === "=" || r.op.text === "!=") return r.op.text;
  throw new FilterError(`${r.field.text} does not support ${r.op.text}; use = or !=`, r.op.pos, r.field.text);
}

function quoted(r: Restriction, what: string): string {
  if (r.value.kind !== "string") {
    throw new FilterError(`${r.field.text} needs ${what}, found ${r.value.text}`, r.value.pos, r.field.text);
  }
  return r.value.text;
}

/** The parser and the SQL of one listing's filter. */
export function createEventFilter(spec: EventFilterSpec) {
  const fields = `type, time, ${spec.userField}`;

  function condition(r: Restriction): EventCondition {
    const field = r.field.text;
    switch (field) {
      case "type": {
        const cmp = equality(r);
        const value = Object.hasOwn(spec.types, r.value.text) ? spec.types[r.value.text] : undefined;
        if (value === undefined) {
          const allowed = Object.keys(spec.types).join(", ");
          throw new FilterError(`type must be one of ${allowed}; found ${r.value.text}`, r.value.pos, field);
        }
        return { kind: "type", cmp, value };
      }
      case "time": {
        if (r.op.text === ":") {
          throw new FilterError("time does not support :; use =, !=, <, <=, > or >=", r.op.pos, field);
        }
        const value = normalizeRfc3339(quoted(r, 'an RFC 3339 time in quotes, like "2026-01-02T15:04:05Z",'));
        if (value === undefined) {
          throw new FilterError(
            'time needs an RFC 3339 time with at most microsecond precision, like "2026-01-02T15:04:05.123456Z"',
            r.value.pos,
            field,
          );
        }
        return { kind: "time", cmp: r.op.text as Ordering, value };
      }
      case spec.userField: {
        const cmp = equality(r);
        const value = quoted(r, 'a user id in quotes (or "" for none)');
        if (value !== "" && !UUID.test(value)) {
          throw new FilterError(`${field} must be a user id (a UUID) or ""; found "${value}"`, r.value.pos, field);
        }
        return { kind: "user_id", cmp, value: value.toLowerCase() };
      }
    }
    throw new FilterError(`unknown field ${field}; filterable fields are ${fields}`, r.field.pos, field);
  }

  function conditionSql(c: EventCondition, p: SqlParams): string {
    switch (c.kind) {
      case "type":
        return `${spec.typeColumn} ${SQL_OPS[c.cmp]} ${p.add(c.value)}`;
      case "time":
        return `${spec.timeColumn} ${SQL_OPS[c.cmp]} ${p.add(c.value)}::timestamptz`;
      case "user_id": {
        const col = spec.userColumn;
        if (c.value === "") return c.cmp === "=" ? `${col} is null` : `${col} is not null`;
        // `=` keeps the column's index usable; != includes the events with no user.
        return c.cmp === "=" ? `${col} = ${p.add(c.value)}::uuid` : `${col} is distinct from ${p.add(c.value)}::uuid`;
      }
    }
  }

  function sql(filter: EventFilter, p: SqlParams): string {
    if (filter === null) return "true";
    switch (filter.kind) {
      case "and":
      case "or":
        return `(${filter.args.map((f) => sql(f, p)).join(` ${filter.kind} `)})`;
      case "not":
        // A condition can be NULL (a type or time compared with a NULL column): `is not true` is the exact
        // complement where `not` would drop the row.
        return `(${sql(filter.arg, p)} is not true)`;
      default:
        return `(${conditionSql(filter, p)})`;
    }
  }

  return {
    /** Parses and checks a filter (null: every event), or throws FilterError (INVALID_FILTER). */
    parse: (text: string): EventFilter => parseFilterWith(text, condition),
    /** The SQL condition for a filter (`true` for none), always parenthesized, its values added to `p`. */
    sql,
  };
}
