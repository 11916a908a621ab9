import { describe, expect, it } from "vitest";
import {
  createSqlParams,
  cursorFromRow,
  DEFAULT_ORDER,
  ID_ORDER,
  keysetSql,
  OrderByError,
  orderBySql,
  parseOrderBy,
  sortKeySelect,
  toSql,
} from "../../../src/users/list/index.ts";

describe("parseOrderBy", () => {
  it("defaults to create_time for a blank order_by", () => {
    expect(parseOrderBy("")).toBe(DEFAULT_ORDER);
    expect(parseOrderBy("  ")).toEqual([{ field: "create_time", desc: false }]);
  });

  it("reads a comma list with optional asc/desc", () => {
    expect(parseOrderBy("email desc, display_name,update_time asc ,  create_time   desc")).toEqual([
      { field: "email", desc: true },
      { field: "display_name", desc: false },
      { field: "update_time", desc: false },
      { field: "create_time", desc: true },
    ]);
  });

  it.each([
    ["id", 'unknown field "id"; sortable fields are create_time, update_time, email, display_name'],
    ["role desc", 'unknown field "role"'],
    ["Email", 'unknown field "Email"'],
    ["email DESC", 'expected "asc" or "desc" after "email", found "DESC"'],
    ["email descending", 'found "descending"'],
    ["email desc asc", 'unexpected "asc" after "email desc"'],
    ["email,", "item 2 is empty"],
    [",email", "item 1 is empty"],
    ["email,,create_time", "item 2 is empty"],
    ["email, email desc", '"email" appears more than once'],
    ["create_time,update_time,create_time", '"create_time" appears more than once'],
  ])("refuses %j", (input, message) => {
    expect(() => parseOrderBy(input)).toThrow(OrderByError);
    expect(() => parseOrderBy(input)).toThrow(/^invalid order_by: /);
    expect(() => parseOrderBy(input)).toThrow(message);
  });

  it("carries the INVALID_ORDER_BY reason", () => {
    expect(() => parseOrderBy("nope")).toThrow(expect.objectContaining({ reason: "INVALID_ORDER_BY" }));
  });
});

describe("ORDER BY and keyset SQL", () => {
  const order = parseOrderBy("email desc, create_time");

  it("sorts email by lower(email), text in code point order, and breaks ties by id ascending", () => {
    expect(orderBySql(order)).toBe('lower(email) collate "C" desc, create_time asc, id asc');
    expect(orderBySql(parseOrderBy("display_name"))).toBe('display_name collate "C" asc, id asc');
    expect(orderBySql(ID_ORDER)).toBe("id asc");
  });

  it("selects positions as exact text and reads them back from a row", () => {
    expect(sortKeySelect(order)).toBe(
      `lower(email) as sort_key_0, to_char(create_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as sort_key_1, id::text as sort_key_id`,
    );
    const row = { id: "x", sort_key_0: "a@b.c", sort_key_1: "2026-01-01T00:00:00.000001Z", sort_key_id: "u" };
    expect(cursorFromRow(order, row)).toEqual({ keys: ["a@b.c", "2026-01-01T00:00:00.000001Z"], id: "u" });
    expect(() => cursorFromRow(order, { sort_key_0: "a" })).toThrow(TypeError);
  });

  it("is true without a cursor", () => {
    expect(keysetSql(order, null, createSqlParams())).toBe("true");
  });

  it("expands 'after the cursor' for mixed directions, each value a placeholder used with one cast", () => {
    const cursor = {
      keys: ["o'brien@x.org", "2026-01-01T00:00:00.123456Z"],
      id: "00000000-0000-4000-8000-000000000000",
    };
    const { sql, params } = toSql((p) => keysetSql(order, cursor, p), 4);
    const email = 'lower(email) collate "C"';
    expect(sql).toBe(
      `(${email} <= $4::text and ((${email} < $4::text) or (${email} = $4::text and create_time > $5::timestamptz)` +
        ` or (${email} = $4::text and create_time = $5::timestamptz and id > $6::uuid)))`,
    );
    expect(params).toEqual([...cursor.keys, cursor.id]);
  });

  it("is a plain id bound in id order", () => {
    expect(toSql((p) => keysetSql(ID_ORDER, { keys: [], id: "i" }, p))).toEqual({
      sql: "(id > $1::uuid)",
      params: ["i"],
    });
  });
});
