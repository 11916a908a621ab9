/**
 * The fields a filter may name and what each accepts. The parser hands every `field op value` here, so
 * one table decides which field exists, which operators it takes and what its literals look like, and
 * each refusal points at the token that caused it.
 */

import { FilterError } from "./errors.ts";
import type { Comparator, Condition } from "./filter.ast.ts";
import type { Token } from "./filter.lexer.ts";
import { normalizeRfc3339 } from "./time-literal.ts";

/** A restriction as written, before it is checked. */
export interface Restriction {
  readonly field: Token;
  readonly op: Token;
  readonly value: Token;
}

const ENUMS = {
  role: { ROLE_USER: "user", ROLE_ADMIN: "admin" },
  state: { USER_STATE_ACTIVE: "active", USER_STATE_SUSPENDED: "suspended", USER_STATE_DELETED: "deleted" },
} as const satisfies Record<string, Record<string, string>>;

const LABEL_KEY = /^[a-z][a-z0-9_.-]{0,62}$/;
const FIELDS = "email, display_name, role, state, create_time, update_time, labels.<key>";

function quoted(r: Restriction, what = "a double-quoted string"): string {
  if (r.value.kind !== "string") {
    throw new FilterError(`${r.field.text} needs ${what}, found ${r.value.text}`, r.value.pos, r.field.text);
  }
  return r.value.text;
}

function enumValue(r: Restriction, field: keyof typeof ENUMS): string {
  const names: Record<string, string> = ENUMS[field];
  const stored = Object.hasOwn(names, r.value.text) ? names[r.value.text] : undefined;
  if (stored === undefined) {
    const allowed = Object.keys(names).join(", ");
    throw new FilterError(`${field} must be one of ${allowed}; found ${r.value.text}`, r.value.pos, field);
  }
  return stored;
}

function timeValue(r: Restriction): string {
  const time = normalizeRfc3339(quoted(r, 'an RFC 3339 time in quotes, like "2026-01-02T15:04:05Z",'));
  if (time === undefined) {
    throw new FilterError(
      `${r.field.text} needs an RFC 3339 time with at most microsecond precision, like "2026-01-02T15:04:05.123456Z"`,
      r.value.pos,
      r.field.text,
    );
  }
  return time;
}

function refuseOperator(r: Restriction, allowed: string): never {
  throw new FilterError(`${r.field.text} does not support ${r.op.text}; use ${allowed}`, r.op.pos, r.field.text);
}

function labelCondition(r: Restriction, cmp: Comparator): Condition {
  const key = r.field.text.slice("labels.".length);
  if (!LABEL_KEY.test(key)) {
    throw new FilterError(`label key "${key}" must match [a-z][a-z0-9_.-]{0,62}`, r.field.pos, r.field.text);
  }
  if (cmp === ":" && r.value.kind === "word" && r.value.text === "*") return { kind: "label_present", key };
  return { kind: "label", key, cmp, value: quoted(r, 'a double-quoted string (or * after ":")') };
}

/** Checks one restriction and returns it as a typed condition, or throws a FilterError pointing at it. */
export function toCondition(r: Restriction): Condition {
  const field = r.field.text;
  const cmp = r.op.text as Comparator;
  switch (field) {
    case "email":
    case "display_name":
      return { kind: "text", field, cmp, value: quoted(r) };
    case "role":
    case "state":
      if (cmp !== "=" && cmp !== "!=") refuseOperator(r, "= or !=");
      return { kind: "enum", field, cmp, value: enumValue(r, field) };
    case "create_time":
    case "update_time":
      if (cmp === ":") refuseOperator(r, "=, !=, <, <=, > or >=");
      return { kind: "time", field, cmp, value: timeValue(r) };
    case "labels":
      throw new FilterError("labels needs a key, like labels.team", r.field.pos, field);
  }
  if (field.startsWith("labels.")) return labelCondition(r, cmp);
  throw new FilterError(`unknown field ${field}; filterable fields are ${FIELDS}`, r.field.pos, field);
}
