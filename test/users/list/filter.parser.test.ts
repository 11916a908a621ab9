import { describe, expect, it } from "vitest";
import { type Filter, MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parseFilter } from "../../../src/users/list/index.ts";

const A = "role = ROLE_ADMIN";
const B = "state = USER_STATE_ACTIVE";
const C = "labels.team:*";
const a: Filter = { kind: "enum", field: "role", cmp: "=", value: "admin" };
const b: Filter = { kind: "enum", field: "state", cmp: "=", value: "active" };
const c: Filter = { kind: "label_present", key: "team" };
const and = (...args: Filter[]): Filter => ({ kind: "and", args });
const or = (...args: Filter[]): Filter => ({ kind: "or", args });
const not = (arg: Filter): Filter => ({ kind: "not", arg });

describe("parseFilter", () => {
  it("returns null for an empty or blank filter (match all)", () => {
    expect(parseFilter("")).toBeNull();
    expect(parseFilter(" \t\n")).toBeNull();
  });

  it.each(["=", "!=", "<", "<=", ">", ">=", ":"] as const)("accepts %s on email and display_name", (cmp) => {
    expect(parseFilter(`email ${cmp} "Ann@X.org"`)).toEqual({ kind: "text", field: "email", cmp, value: "Ann@X.org" });
    expect(parseFilter(`display_name${cmp}"Zoë"`)).toEqual({ kind: "text", field: "display_name", cmp, value: "Zoë" });
  });

  it.each(["=", "!=", "<", "<=", ">", ">=", ":"] as const)("accepts %s on labels.<key>", (cmp) => {
    expect(parseFilter(`labels.cost-center.v_2 ${cmp} "x"`)).toEqual({
      kind: "label",
      key: "cost-center.v_2",
      cmp,
      value: "x",
    });
  });

  it.each(["=", "!=", "<", "<=", ">", ">="] as const)("accepts %s on create_time and update_time", (cmp) => {
    expect(parseFilter(`create_time ${cmp} "2026-03-04T05:06:07Z"`)).toEqual({
      kind: "time",
      field: "create_time",
      cmp,
      value: "2026-03-04T05:06:07Z",
    });
    expect(parseFilter(`update_time ${cmp} "2026-03-04t05:06:07.123456000-02:30"`)).toMatchObject({
      field: "update_time",
      value: "2026-03-04T05:06:07.123456-02:30",
    });
  });

  it("maps every enum name, bare or quoted, to its stored word", () => {
    expect(parseFilter("role = ROLE_USER")).toMatchObject({ value: "user" });
    expect(parseFilter('role != "ROLE_ADMIN"')).toMatchObject({ cmp: "!=", value: "admin" });
    expect(parseFilter("state = USER_STATE_ACTIVE")).toMatchObject({ value: "active" });
    expect(parseFilter("state = USER_STATE_SUSPENDED")).toMatchObject({ value: "suspended" });
    expect(parseFilter("state != USER_STATE_DELETED")).toMatchObject({ value: "deleted" });
  });

  it("reads labels.<key>:* as presence and a quoted * as a literal", () => {
    expect(parseFilter("labels.team:*")).toEqual(c);
    expect(parseFilter('labels.team:"*"')).toEqual({ kind: "label", key: "team", cmp: ":", value: "*" });
  });

  it("binds OR tighter than AND, as AIP-160 does", () => {
    expect(parseFilter(`${A} AND ${B} OR ${C}`)).toEqual(and(a, or(b, c)));
    expect(parseFilter(`${A} OR ${B} AND ${C}`)).toEqual(and(or(a, b), c));
    expect(parseFilter(`${A} OR ${B} OR ${C}`)).toEqual(or(a, b, c));
  });

  it("treats juxtaposition as AND at the level of AND", () => {
    expect(parseFilter(`${A} ${B} ${C}`)).toEqual(and(a, b, c));
    expect(parseFilter(`${A} ${B} OR ${C}`)).toEqual(and(a, or(b, c)));
    expect(parseFilter(`${A} AND ${B} ${C}`)).toEqual(and(a, and(b, c)));
  });

  it("lets parentheses override precedence", () => {
    expect(parseFilter(`(${A} AND ${B}) OR ${C}`)).toEqual(or(and(a, b), c));
    expect(parseFilter(`((${A}))`)).toEqual(a);
    expect(parseFilter(`${A} (${B} ${C})`)).toEqual(and(a, and(b, c)));
  });

  it("negates one term with NOT or -", () => {
    expect(parseFilter(`NOT ${A} OR ${B}`)).toEqual(or(not(a), b));
    expect(parseFilter(`-${A} ${B}`)).toEqual(and(not(a), b));
    expect(parseFilter(`NOT (${A} OR ${B})`)).toEqual(not(or(a, b)));
    expect(parseFilter(`-(${A}) AND NOT ${C}`)).toEqual(and(not(a), not(c)));
  });

  it("gives equal trees for different spellings of one filter", () => {
    expect(parseFilter(`${A}   AND\n${B}`)).toEqual(parseFilter(`(${A}) AND (${B})`));
  });

  it(`accepts ${MAX_FILTER_DEPTH} levels of parentheses and ${MAX_FILTER_TERMS} terms`, () => {
    const deep = `${"(".repeat(MAX_FILTER_DEPTH)}${A}${")".repeat(MAX_FILTER_DEPTH)}`;
    expect(parseFilter(deep)).toEqual(a);
    const many = Array.from({ length: MAX_FILTER_TERMS }, () => A).join(" OR ");
    expect(parseFilter(many)).toMatchObject({ kind: "or", args: { length: MAX_FILTER_TERMS } });
  });
});
