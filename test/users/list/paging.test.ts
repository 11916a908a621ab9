/**
 * Keyset paging through 1,200 users on a real PostgreSQL, with every sort field in both directions and
 * in mixes: each user comes back exactly once, in the reference order, with positions carried through
 * real page tokens (so microsecond timestamps must survive the round trip).
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  createPageTokenCodec,
  cursorFromRow,
  filterSql,
  ID_ORDER,
  keysetSql,
  orderBySql,
  type PageRequest,
  parseFilter,
  parseOrderBy,
  sortKeySelect,
  toSql,
} from "../../../src/users/list/index.ts";
import { createTestDatabase, query } from "../../helpers/database.ts";
import { comparator, matches } from "./reference.ts";
import { insertUsers, makeUsers, type TestUser } from "./users.fixture.ts";

const users = makeUsers(1200, 11);
const codec = createPageTokenCodec("a test key that is at least 32 bytes long");
let url: string;

beforeAll(async () => {
  url = await createTestDatabase();
  await insertUsers(url, users);
});

/** One ListUsers page the way the integrator is told to build it. */
async function page(db: string, request: PageRequest, pageToken: string, pageSize: number) {
  const cursor = codec.decode(request, pageToken)?.cursor ?? null;
  const { sql, params } = toSql(
    (p) => `select id, ${sortKeySelect(request.orderBy)} from users
      where ${request.showDeleted ? "true" : "delete_time is null"}
        and ${filterSql(request.filter, p)} and ${keysetSql(request.orderBy, cursor, p)}
      order by ${orderBySql(request.orderBy)} limit ${p.add(pageSize + 1)}`,
  );
  const rows = await query(db, sql, params);
  const next =
    rows.length > pageSize
      ? codec.encode(request, { cursor: cursorFromRow(request.orderBy, rows[pageSize - 1]), total: 0 })
      : "";
  return { ids: rows.slice(0, pageSize).map((r) => r.id as string), next };
}

async function pageThrough(db: string, request: PageRequest, pageSize: number): Promise<string[]> {
  const ids: string[] = [];
  let token = "";
  do {
    const result = await page(db, request, token, pageSize);
    ids.push(...result.ids);
    token = result.next;
  } while (token !== "");
  return ids;
}

function reference(request: PageRequest, pool: readonly TestUser[] = users): string[] {
  return pool
    .filter((u) => (request.showDeleted || u.state !== "deleted") && matches(request.filter, u))
    .sort(comparator(request.orderBy))
    .map((u) => u.id);
}

const orders = [
  "",
  "create_time desc",
  "update_time",
  "update_time desc",
  "email",
  "email desc",
  "display_name",
  "display_name desc",
  "display_name, email desc",
  "create_time desc, display_name asc",
  "update_time desc, email",
  "display_name desc, create_time, update_time desc",
  "email, display_name, create_time, update_time",
];

describe("keyset paging on PostgreSQL", () => {
  it.each(orders)("returns every user exactly once in order for order_by %j", async (orderBy) => {
    const request = { filter: null, orderBy: parseOrderBy(orderBy), showDeleted: true };
    const ids = await pageThrough(url, request, 97);
    expect(new Set(ids).size).toBe(users.length);
    expect(ids).toEqual(reference(request));
  });

  it("pages a filtered, deleted-free listing with mixed directions", async () => {
    const request = {
      filter: parseFilter('state != USER_STATE_SUSPENDED (labels.team:* OR display_name:"Ann")'),
      orderBy: parseOrderBy("display_name desc, update_time"),
      showDeleted: false,
    };
    const want = reference(request);
    expect(want.length).toBeGreaterThan(100);
    expect(await pageThrough(url, request, 13)).toEqual(want);
  });

  it("pages in id order alone, as StreamUsers does", async () => {
    const request = { filter: null, orderBy: ID_ORDER, showDeleted: true };
    expect(await pageThrough(url, request, 250)).toEqual(users.map((u) => u.id).sort());
  });

  it("neither skips nor repeats a user when others are created or deleted between pages", async () => {
    const db = await createTestDatabase();
    await insertUsers(db, users);
    const request = { filter: null, orderBy: parseOrderBy("email desc"), showDeleted: false };
    const first = await page(db, request, "", 200);
    const gone = new Set([...first.ids.slice(0, 5), ...reference(request).slice(300, 305)]);
    const late = makeUsers(40, 99).map((u, i) => ({
      ...u,
      state: "active" as const,
      email: `${i % 2 ? "zz" : "aa"}${i}@late.org`,
    }));
    await query(db, "update users set state = 'deleted', delete_time = now() where id = any($1::uuid[])", [[...gone]]);
    await insertUsers(db, late);
    const rest: string[] = [];
    for (let token = first.next; token !== ""; ) {
      const result = await page(db, request, token, 200);
      rest.push(...result.ids);
      token = result.next;
    }
    const now = [...users.map((u) => (gone.has(u.id) ? { ...u, state: "deleted" as const } : u)), ...late];
    const after = reference(request, now);
    expect(rest).toEqual(after.slice(after.indexOf(first.ids[199]) + 1));
    expect(rest).toEqual(expect.arrayContaining(late.filter((u) => u.email.startsWith("aa")).map((u) => u.id)));
    expect(new Set([...first.ids, ...rest]).size).toBe(first.ids.length + rest.length);
  });
});
