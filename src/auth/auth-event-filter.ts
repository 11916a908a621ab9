/**
 * The filter of ListAuthEvents: ListUsers' AIP-160 grammar (src/users/list, `parseFilterWith`) over the
 * fields of an auth event:
 *
 * - `type = AUTH_EVENT_TYPE_LOGIN_FAILED` (bare or quoted; = and != only);
 * - `time > "2026-12-01T00:00:00Z"` (quoted RFC 3339, at most microseconds; =, !=, <, <=, >, >=);
 * - `user_id = "<uuid>"` (= and !=; `user_id = ""` is an event with no user, a failed login for an
 *   unknown email; `user_id != "<uuid>"` includes those).
 *
 * In SQL a condition may be NULL (`user_id = $1` on an event with no user); NOT is written `is not true`,
 * so it is still the exact complement of what it wraps and `user_id = $1` can use its index.
 */
import {
  FilterError,
  type FilterTree,
  normalizeRfc3339,
  type Ordering,
  parseFilterWith,
  type Restriction,
  type SqlParams,
} from "../users/list/index.ts";
import { AUTH_EVENT_TYPES, type AuthEventType } from "./auth-event-recorder.ts";

/** One checked restriction on an auth event. */
export type AuthEventCondition =
  | { readonly kind: "type"; readonly cmp: "=" | "!="; readonly value: AuthEventType }
  | { readonly kind: "time"; readonly cmp: Ordering; readonly value: string }
  | { readonly kind: "user_id"; readonly cmp: "=" | "!="; readonly value: string };

/** A parsed filter; null matches every event. */
export type AuthEventFilter = FilterTree<AuthEventCondition> | null;

const FIELDS = "type, time, user_id";
const PREFIX = "AUTH_EVENT_TYPE_";
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

function condition(r: Restriction): AuthEventCondition {
  const field = r.field.text;
  switch (field) {
    case "type": {
      const cmp = equality(r);
      const name = r.value.text.startsWith(PREFIX) ? r.value.text.slice(PREFIX.length) : "";
      const value = AUTH_EVENT_TYPES.find((t) => t === name);
      if (!value) {
        const allowed = AUTH_EVENT_TYPES.map((t) => PREFIX + t).join(", ");
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
    case "user_id": {
      const cmp = equality(r);
      const value = quoted(r, 'a user id in quotes (or "" for none)');
      if (value !== "" && !UUID.test(value)) {
        throw new FilterError(`user_id must be a user id (a UUID) or ""; found "${value}"`, r.value.pos, field);
      }
      return { kind: "user_id", cmp, value: value.toLowerCase() };
    }
  }
  throw new FilterError(`unknown field ${field}; filterable fields are ${FIELDS}`, r.field.pos, field);
}

/** Parses and checks a ListAuthEvents filter, or throws FilterError (INVALID_FILTER). */
export function parseAuthEventFilter(text: string): AuthEventFilter {
  return parseFilterWith(text, condition);
}

function conditionSql(c: AuthEventCondition, p: SqlParams): string {
  switch (c.kind) {
    case "type":
      return `type ${SQL_OPS[c.cmp]} ${p.add(c.value)}`;
    case "time":
      return `time ${SQL_OPS[c.cmp]} ${p.add(c.value)}::timestamptz`;
    case "user_id":
      if (c.value === "") return c.cmp === "=" ? "user_id is null" : "user_id is not null";
      return c.cmp === "=" ? `user_id = ${p.add(c.value)}::uuid` : `user_id is distinct from ${p.add(c.value)}::uuid`;
  }
}

/** The SQL condition on auth_events for a filter (`true` for none), its values added to `p`. */
export function authEventFilterSql(filter: AuthEventFilter, p: SqlParams): string {
  if (filter === null) return "true";
  switch (filter.kind) {
    case "and":
    case "or":
      return `(${filter.args.map((f) => authEventFilterSql(f, p)).join(` ${filter.kind} `)})`;
    case "not":
      return `(${authEventFilterSql(filter.arg, p)} is not true)`;
    default:
      return `(${conditionSql(filter, p)})`;
  }
}
