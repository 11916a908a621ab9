/** The shape of the generated SQL: placeholders only, numbered from any index, wildcards escaped. */
import { describe, expect, it } from "vitest";
import { createSqlParams, filterSql, parseFilter, toSql } from "../../../src/users/list/index.ts";

const sql = (filter: string, first = 1) => toSql((p) => filterSql(parseFilter(filter), p), first);

describe("filterSql", () => {
  it("is true for no filter and adds no parameters", () => {
    const params = createSqlParams();
    expect(filterSql(null, params)).toBe("true");
    expect(params.values).toEqual([]);
  });

  it("numbers placeholders from the index the caller gives", () => {
    expect(sql('email = "a" OR display_name = "b"', 7)).toEqual({
      sql: "((lower(email) = lower($7)) or (display_name = $8))",
      params: ["a", "b"],
    });
  });

  it("never puts a value in the SQL text", () => {
    const hostile = `x'); drop table users; -- $1 \\" %_`;
    const filter = `email:"${hostile.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
    const { sql: text, params } = sql(`${filter} OR labels.team = "' or 1=1 --"`);
    expect(text).not.toMatch(/drop|or 1=1/);
    expect(params).toEqual(["%x'); drop table users; -- $1 \\\\\" \\%\\_%", "team", "' or 1=1 --"]);
  });

  it("escapes LIKE wildcards and compares email in lower case", () => {
    expect(sql('email:"A_b%c\\\\d"')).toEqual({
      sql: "(lower(email) like lower($1) escape '\\')",
      params: ["%A\\_b\\%c\\\\d%"],
    });
    expect(sql('email < "B"').sql).toBe('(lower(email) collate "C" < lower($1))');
  });

  it("reads labels with ->> (never the ? operator) and treats a missing label as not matching", () => {
    expect(sql('labels.team = "x"').sql).toBe("(labels @> jsonb_build_object($1::text, $2::text))");
    expect(sql('labels.team != "x"').sql).toBe("(not (labels @> jsonb_build_object($1::text, $2::text)))");
    expect(sql("labels.team:*").sql).toBe("((labels ->> $1::text) is not null)");
    expect(sql('labels.team >= "x"').sql).toBe('(coalesce((labels ->> $1::text) collate "C" >= $2, false))');
    expect(sql('labels.team:"x"').sql).toBe("(coalesce((labels ->> $1::text) like $2 escape '\\', false))");
    expect(sql('labels.a = "1" labels.b:* labels.c:"2" labels.d < "3"').sql).not.toContain("?");
  });

  it("casts times and maps enums to stored words", () => {
    expect(sql('create_time >= "2026-01-01T00:00:00.5Z" role != ROLE_USER NOT state = USER_STATE_DELETED')).toEqual({
      sql: "((create_time >= $1::timestamptz) and (role <> $2) and (not (state = $3)))",
      params: ["2026-01-01T00:00:00.5Z", "user", "deleted"],
    });
  });
});
