/** Every way a filter is refused, with the offset (and field) the error points at. */
import { describe, expect, it } from "vitest";
import { FilterError, MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parseFilter } from "../../../src/users/list/index.ts";

const A = "role = ROLE_ADMIN";

function failure(input: string): FilterError {
  try {
    parseFilter(input);
  } catch (err) {
    if (err instanceof FilterError) return err;
    throw err;
  }
  throw new Error(`accepted: ${input}`);
}

describe("parseFilter errors", () => {
  it.each<[string, number, string, string?]>([
    ['name = "x"', 0, "unknown field name", "name"],
    ['id = "x"', 0, "unknown field id", "id"],
    ['email = "a" AND Email = "b"', 16, "unknown field Email", "Email"],
    ["labels:*", 0, "labels needs a key", "labels"],
    ["labels.Team:*", 0, 'label key "Team" must match', "labels.Team"],
    ["labels.:*", 0, 'label key "" must match', "labels."],
    [`labels.${"k".repeat(64)}:*`, 0, "must match", `labels.${"k".repeat(64)}`],
    ["role > ROLE_ADMIN", 5, "role does not support >; use = or !=", "role"],
    ["state : USER_STATE_ACTIVE", 6, "state does not support :", "state"],
    ['create_time : "2026-01-01T00:00:00Z"', 12, "create_time does not support :", "create_time"],
    ["role = ROLE_UNSPECIFIED", 7, "role must be one of ROLE_USER, ROLE_ADMIN; found ROLE_UNSPECIFIED", "role"],
    ["state = USER_STATE_UNSPECIFIED", 8, "found USER_STATE_UNSPECIFIED", "state"],
    ["state = ROLE_ADMIN", 8, "state must be one of", "state"],
    ["role = admin", 7, "found admin", "role"],
    ["email = ann", 8, "email needs a double-quoted string, found ann", "email"],
    ["display_name:*", 13, "display_name needs a double-quoted string", "display_name"],
    ["labels.team = core", 14, "labels.team needs a double-quoted string", "labels.team"],
    ["create_time > 2026", 14, "create_time needs an RFC 3339 time in quotes", "create_time"],
    ['create_time > "yesterday"', 14, "RFC 3339", "create_time"],
    ['update_time < "2026-02-30T00:00:00Z"', 14, "RFC 3339", "update_time"],
    ['update_time < "2026-01-01T00:00:00.0000001Z"', 14, "at most microsecond precision", "update_time"],
    ['update_time < "2026-01-01 00:00:00Z"', 14, "RFC 3339", "update_time"],
    ["email", 5, "expected =, !=, <, <=, >, >= or : after email, found the end of the filter", "email"],
    ['email "x"', 6, "after email, found a string", "email"],
    ["email =", 7, "expected a value after email =, found the end of the filter", "email"],
    ["email = (", 8, 'expected a value after email =, found "("', "email"],
    ["email = = ", 8, 'found "="', "email"],
    [`${A} AND`, 21, "expected a field name, found the end of the filter"],
    [`${A} OR OR ${A}`, 21, 'expected a field name, found "OR"'],
    [`AND ${A}`, 0, 'expected a field name, found "AND"'],
    [`NOT NOT ${A}`, 4, 'expected a field name, found "NOT"'],
    [`${A} "x"`, 18, "expected a field name, found a string"],
    [`${A} ${A} -`, 37, "expected a field name, found the end of the filter"],
    [`${A})`, 17, 'unexpected ")"'],
    [`(${A}`, 18, 'expected ")" to close "(" at offset 0, found the end of the filter'],
    [`((${A}) OR ${A}`, 41, 'expected ")" to close "(" at offset 0'],
    ["()", 0, "empty parentheses"],
    [`${A} AND ( )`, 22, "empty parentheses"],
    [")", 0, 'expected a field name, found ")"'],
    ['email = "x', 8, "string is not closed"],
    ["email == x", 7, 'expected a value after email =, found "="', "email"],
    ["email = x & y", 10, 'unexpected character "&"'],
  ])("%j fails at offset %i: %s", (input, position, message, field) => {
    const err = failure(input);
    expect(err.reason).toBe("INVALID_FILTER");
    expect(err.position).toBe(position);
    expect(err.field).toBe(field);
    expect(err.message).toContain(`offset ${position}: `);
    expect(err.message).toContain(message);
  });

  it(`refuses parentheses nested deeper than ${MAX_FILTER_DEPTH} at the first paren too deep`, () => {
    const input = `${"(".repeat(MAX_FILTER_DEPTH + 1)}${A}${")".repeat(MAX_FILTER_DEPTH + 1)}`;
    const err = failure(input);
    expect(err.position).toBe(MAX_FILTER_DEPTH);
    expect(err.message).toContain(`nested deeper than ${MAX_FILTER_DEPTH}`);
  });

  it(`refuses more than ${MAX_FILTER_TERMS} terms at the first extra term`, () => {
    const input = Array.from({ length: MAX_FILTER_TERMS + 1 }, () => A).join(" ");
    const err = failure(input);
    expect(err.position).toBe(MAX_FILTER_TERMS * (A.length + 1));
    expect(err.message).toContain(`more than ${MAX_FILTER_TERMS} terms`);
  });
});
