/**
 * The generated SQL against a real PostgreSQL: every filter returns exactly the users the JavaScript
 * reference says, and hostile string literals stay data.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { filterSql, parseFilter, toSql } from "../../../src/users/list/index.ts";
import { createTestDatabase, query } from "../../helpers/database.ts";
import { matches } from "./reference.ts";
import { insertUsers, makeUsers, rfc3339, type TestUser } from "./users.fixture.ts";

const users = makeUsers(300, 7);
let url: string;

beforeAll(async () => {
  url = await createTestDatabase();
  await insertUsers(url, users);
});

async function selectIds(filter: string): Promise<string[]> {
  const parsed = parseFilter(filter);
  // Start at $3 with two unrelated parameters first, as a caller appending conditions would.
  const { sql, params } = toSql(
    (p) => `select id from users where ${p.add(1)}::int = ${p.add(1)} and ${filterSql(parsed, p)}`,
  );
  const rows = await query<{ id: string }>(url, sql, params);
  return rows.map((r) => r.id).sort();
}

function expected(filter: string, pool: readonly TestUser[] = users): string[] {
  const parsed = parseFilter(filter);
  return pool
    .filter((u) => matches(parsed, u))
    .map((u) => u.id)
    .sort();
}

const someEmail = users[42].email;
const midTime = rfc3339(users[10].create_time);

/** Filters that select some users but not all, so a translation bug cannot hide behind an empty result. */
const selective = [
  `email = "${someEmail.toUpperCase()}"`,
  `email != "${someEmail}"`,
  'email < "carol"',
  'email <= "BOB1@EXAMPLE.COM"',
  'email > "dave"',
  'email >= "Eve"',
  'email:"_x"',
  'email:"TEST.ORG"',
  'display_name = "Ann"',
  'display_name != "Ann"',
  'display_name < "ann"',
  'display_name <= "Zoë"',
  'display_name > "Ünal"',
  'display_name >= "Quote\\"d"',
  'display_name:"%"',
  'display_name:"_"',
  'display_name:"\\\\"',
  'display_name:"\\""',
  `display_name:"'"`,
  'display_name:"ë"',
  "role = ROLE_ADMIN",
  'role != "ROLE_ADMIN"',
  "state = USER_STATE_ACTIVE",
  "state != USER_STATE_DELETED",
  "state = USER_STATE_SUSPENDED",
  `create_time = "${midTime}"`,
  `create_time != "${midTime}"`,
  `create_time < "${midTime}"`,
  `create_time <= "${midTime}"`,
  `create_time > "${midTime}"`,
  `create_time >= "${midTime}"`,
  `update_time > "${midTime}"`,
  'update_time < "2026-01-01T02:00:30+02:00"',
  "labels.team:*",
  "-labels.team:*",
  'labels.team = "core"',
  'labels.team != "core"',
  'labels.team < "edge"',
  'labels.env >= "edge"',
  'labels.cost-center:"%"',
  'labels.a.b:"_"',
  'labels.env = ""',
  "role = ROLE_ADMIN state = USER_STATE_ACTIVE",
  "role = ROLE_ADMIN AND state = USER_STATE_ACTIVE OR labels.team:*",
  "(role = ROLE_ADMIN AND state = USER_STATE_ACTIVE) OR labels.team:*",
  'NOT (display_name:"Ann" OR display_name:"Bob") labels.env:*',
  "-(state = USER_STATE_DELETED OR role = ROLE_USER)",
  'NOT labels.team = "core" AND email:"example"',
];

describe("filter SQL on PostgreSQL", () => {
  it("matches the reference for every operator, field and combination", async () => {
    for (const filter of selective) {
      const want = expected(filter);
      expect(want.length, filter).toBeGreaterThan(0);
      expect(want.length, filter).toBeLessThan(users.length);
      expect(await selectIds(filter), filter).toEqual(want);
    }
  });

  it("matches everyone with an empty filter", async () => {
    expect(await selectIds("  ")).toHaveLength(users.length);
  });

  it("compares email case-insensitively and display_name exactly", async () => {
    const [target] = users.filter((u) => u.email !== u.email.toLowerCase() && u.state !== "deleted");
    expect(await selectIds(`email = "${target.email.toLowerCase()}"`)).toContain(target.id);
    expect(await selectIds('display_name = "ann"')).toEqual(
      users
        .filter((u) => u.display_name === "ann")
        .map((u) => u.id)
        .sort(),
    );
  });

  it("keeps injection attempts as data: they match nothing and break nothing", async () => {
    for (const filter of [
      `display_name = "x' or '1'='1"`,
      `email:"'; drop table users; --"`,
      `labels.team = "\\"); delete from users; --"`,
      `labels.team:"') or true or ('"`,
      `display_name < "" OR display_name = "$1"`,
    ]) {
      expect(await selectIds(filter), filter).toEqual([]);
    }
    const [{ count }] = await query<{ count: string }>(url, "select count(*) from users");
    expect(Number(count)).toBe(users.length);
  });
});
