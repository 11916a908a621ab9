/**
 * ListUserChanges' filter: the AIP-160 grammar of ListUsers (../list/filter.parser.ts, same precedence and
 * limits) over the fields of a change: `type` (WatchEventType names, = and !=), `time` (RFC 3339, every
 * ordering comparator) and `actor.user_id` (a quoted user id, or "" for no user, = and !=). Anything else is
 * INVALID_FILTER. `historyFilterSql` turns the tree into a condition on `user_changes`, values as placeholders.
 */
import {
  FilterError,
  type FilterTree,
  normalizeRfc3339,
  type Ordering,
  parseFilterWith,
  type Restriction,
  type SqlParams,
} from "../list/index.ts";

export type HistoryCondition =
  | { readonly kind: "type"; readonly cmp: "=" | "!="; readonly value: string }
  | { readonly kind: "time"; readonly cmp: Ordering; readonly value: string }
  | { readonly kind: "actor_user_id"; readonly cmp: "=" | "!="; readonly value: string };

export type HistoryFilter = FilterTree<HistoryCondition>;

const TYPES: Record<string, string> = {
  WATCH_EVENT_TYPE_CREATED: "created",
  WATCH_EVENT_TYPE_UPDATED: "updated",
  WATCH_EVENT_TYPE_DELETED: "deleted",
  WATCH_EVENT_TYPE_UNDELETED: "undeleted",
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FIELDS = "type, time, actor.user_id";

function equality(r: Restriction): "=" | "!=" {
  if (r.op.text !== "=" && r.op.text !== "!=") {
    throw new FilterError(`${r.field.text} does not support ${r.op.text}; use = or !=`, r.op.pos, r.field.text);
  }
  return r.op.text;
}

function quoted(r: Restriction, what: string): string {
  if (r.value.kind !== "string") {
    throw new FilterError(`${r.field.text} needs ${what}, found ${r.value.text}`, r.value.pos, r.field.text);
  }
  return r.value.text;
}

function condition(r: Restriction): HistoryCondition {
  switch (r.field.text) {
    case "type": {
      const cmp = equality(r);
      const value = Object.hasOwn(TYPES, r.value.text) ? TYPES[r.value.text] : undefined;
      if (value === undefined) {
        const allowed = Object.keys(TYPES).join(", ");
        throw new FilterError(`type must be one of ${allowed}; found ${r.value.text}`, r.value.pos, "type");
      }
      return { kind: "type", cmp, value };
    }
    case "time": {
      if (r.op.text === ":") {
        throw new FilterError("time does not support :; use =, !=, <, <=, > or >=", r.op.pos, "time");
      }
      const value = normalizeRfc3339(quoted(r, 'an RFC 3339 time in quotes, like "2026-01-02T15:04:05Z",'));
      if (value === undefined) {
        throw new FilterError(
          'time needs an RFC 3339 time with at most microsecond precision, like "2026-01-02T15:04:05.123456Z"',
          r.value.pos,
          "time",
        );
      }
      return { kind: "time", cmp: r.op.text as Ordering, value };
    }
    case "actor.user_id": {
      const cmp = equality(r);
      const value = quoted(r, "a user id in double quotes");
      if (value !== "" && !UUID.test(value)) {
        throw new FilterError('actor.user_id must be a user id (UUID), or "" for none', r.value.pos, "actor.user_id");
      }
      return { kind: "actor_user_id", cmp, value: value.toLowerCase() };
    }
  }
  throw new FilterError(`unknown field ${r.field.text}; filterable fields are ${FIELDS}`, r.field.pos, r.field.text);
}

/** The checked filter (null: every change), or FilterError (INVALID_FILTER). */
export function parseHistoryFilter(input: string): HistoryFilter | null {
  return parseFilterWith(input, condition);
}

const SQL_OPS: Record<Ordering, string> = { "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=" };

function conditionSql(c: HistoryCondition, p: SqlParams): string {
  switch (c.kind) {
    case "type":
      return `type ${SQL_OPS[c.cmp]} ${p.add(c.value)}`;
    case "time":
      return `change_time ${SQL_OPS[c.cmp]} ${p.add(c.value)}::timestamptz`;
    case "actor_user_id":
      // Never NULL (a system change has no user: ""), so NOT is the exact complement.
      return `coalesce(actor_user_id::text, '') ${SQL_OPS[c.cmp]} ${p.add(c.value)}`;
  }
}

/** The SQL condition on user_changes for a filter (`true` for none). Always parenthesized. */
export function historyFilterSql(filter: HistoryFilter | null, p: SqlParams): string {
  if (filter === null) return "true";
  switch (filter.kind) {
    case "and":
    case "or":
      return `(${filter.args.map((f) => historyFilterSql(f, p)).join(` ${filter.kind} `)})`;
    case "not":
      return `(not ${historyFilterSql(filter.arg, p)})`;
    default:
      return `(${conditionSql(filter, p)})`;
  }
}
