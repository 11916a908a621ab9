/**
 * ListUsers over the wire: the filter grammar end to end (gRPC and Connect JSON), its refusals, order_by,
 * keyset paging through 1,000+ users while others are created and deleted between pages, total_size,
 * page sizes and page tokens (bound to their request, tamper-evident).
 */
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/user/v1/user_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { loginToken, usersAs } from "./support.ts";

/**
 * A small population with known attributes, inserted directly (times chosen, not "now"). With the
 * bootstrap admin (admin@example.com, "Administrator", ROLE_ADMIN, created when the server started)
 * the live users are admin, alice, bob, bobby, carol, erin, frank, zoe; dave is deleted.
 */
const FIXTURE = `
insert into users (id, email, display_name, role, state, labels, version, create_time, update_time, delete_time) values
 (gen_random_uuid(), 'alice@example.com', 'Alice Smith', 'user', 'active', '{"team":"core","tier":"gold"}',
   1, '2021-01-01T00:00:00Z', '2021-06-01T00:00:00Z', null),
 (gen_random_uuid(), 'Bob@Example.COM', 'Bob Jones', 'admin', 'active', '{"team":"edge"}',
   1, '2021-02-01T00:00:00Z', '2022-01-01T00:00:00Z', null),
 (gen_random_uuid(), 'carol@corp.io', 'carol', 'user', 'suspended', '{"team":"core","cost-center":"42"}',
   1, '2021-03-01T12:00:00.500Z', '2021-03-01T12:00:00.500Z', null),
 (gen_random_uuid(), 'dave@corp.io', 'Dave', 'user', 'deleted', '{"team":"core"}',
   1, '2021-04-01T00:00:00Z', '2021-04-02T00:00:00Z', '2021-04-02T00:00:00Z'),
 (gen_random_uuid(), 'erin@example.com', 'Erin O''Brien', 'user', 'active', '{"tier":"silver"}',
   1, '2021-05-01T00:00:00Z', '2021-05-01T00:00:00Z', null),
 (gen_random_uuid(), 'frank@example.com', '100% Frank', 'user', 'active', '{"note":"a_b"}',
   1, '2021-06-01T00:00:00Z', '2021-07-01T00:00:00Z', null),
 (gen_random_uuid(), 'zoe@example.com', 'Zoë', 'user', 'active', '{}',
   1, '2021-07-01T00:00:00Z', '2021-07-01T00:00:00Z', null),
 (gen_random_uuid(), 'bobby@example.com', 'Robert''); DROP TABLE users;--', 'user', 'active', '{"team":"x'') OR true --"}',
   1, '2021-08-01T00:00:00Z', '2021-08-01T00:00:00Z', null)`;

const LIVE = ["admin", "alice", "bob", "bobby", "carol", "erin", "frank", "zoe"];
const but = (...out: string[]) => LIVE.filter((n) => !out.includes(n));

/** [filter, expected users (local part of the email), show_deleted]. */
const CASES: [string, string[], boolean?][] = [
  ["", LIVE],
  ["   ", LIVE],
  // email: equality and ordering compare case-insensitively; ":" is a substring match.
  ['email = "ALICE@EXAMPLE.COM"', ["alice"]],
  ['email = "bob@example.com"', ["bob"]],
  ['email != "Alice@Example.com"', but("alice")],
  ['email : "CORP"', ["carol"]],
  ['email : "CORP"', ["carol", "dave"], true],
  ['email : "@EXAMPLE."', but("carol")],
  ['email < "B"', ["admin", "alice"]],
  ['email <= "BOB@example.com"', ["admin", "alice", "bob"]],
  ['email > "erin@example.com"', ["frank", "zoe"]],
  ['email >= "erin@example.com"', ["erin", "frank", "zoe"]],
  // display_name: exact; ":" escapes LIKE's wildcards; ordering is by code point.
  ['display_name = "carol"', ["carol"]],
  ['display_name = "Carol"', []],
  ['display_name != "carol"', but("carol")],
  ['display_name : "Smith"', ["alice"]],
  ['display_name : "%"', ["frank"]],
  ['display_name : "_"', []],
  ['display_name : "\'"', ["bobby", "erin"]],
  ['display_name = "Zoë"', ["zoe"]],
  ['display_name < "B"', ["admin", "alice", "frank"]],
  ['display_name >= "Robert"', ["bobby", "carol", "zoe"]],
  // enums by full name.
  ["role = ROLE_ADMIN", ["admin", "bob"]],
  ["role != ROLE_ADMIN", but("admin", "bob")],
  ["role = ROLE_USER", but("admin", "bob")],
  ["state = USER_STATE_SUSPENDED", ["carol"]],
  ["state = USER_STATE_ACTIVE", but("carol")],
  ["state = USER_STATE_DELETED", []],
  ["state = USER_STATE_DELETED", ["dave"], true],
  ["state != USER_STATE_ACTIVE", ["carol", "dave"], true],
  // times in RFC 3339, offsets and fractions honoured.
  ['create_time < "2021-02-01T00:00:00Z"', ["alice"]],
  ['create_time < "2021-02-01t00:00:00z"', ["alice"]],
  ['create_time <= "2021-02-01T00:00:00Z"', ["alice", "bob"]],
  ['create_time = "2021-03-01T12:00:00.5Z"', ["carol"]],
  ['create_time = "2021-03-01T13:00:00.500+01:00"', ["carol"]],
  ['create_time > "2021-03-01T13:00:00+01:00"', but("alice", "bob")],
  ['create_time != "2021-01-01T00:00:00Z"', but("alice")],
  ['create_time >= "2021-05-01T00:00:00Z" AND create_time < "2022-01-01T00:00:00Z"', ["bobby", "erin", "frank", "zoe"]],
  ['create_time >= "2021-04-01T00:00:00Z" AND create_time < "2021-05-01T00:00:00Z"', ["dave"], true],
  ['update_time > "2021-12-31T23:59:59.999999Z" AND update_time < "2023-01-01T00:00:00-05:00"', ["bob"]],
  // labels: equality, inequality (a missing label is "not equal"), substring, ordering, presence.
  ['labels.team = "core"', ["alice", "carol"]],
  ['labels.team = "core"', ["alice", "carol", "dave"], true],
  ['labels.team != "core"', but("alice", "carol")],
  ['labels.team : "or"', ["alice", "carol"]],
  ["labels.team:*", ["alice", "bob", "bobby", "carol"]],
  ["labels.team : *", ["alice", "bob", "bobby", "carol"]],
  ['labels.cost-center = "42"', ["carol"]],
  ['labels.tier < "h"', ["alice"]],
  ['labels.tier >= "silver"', ["erin"]],
  ['labels.note : "_"', ["frank"]],
  ['labels.nope = "x"', []],
  ['labels.team = "x\') OR true --"', ["bobby"]],
  // AND, OR, NOT, "-", parentheses, implicit AND; OR binds tighter than AND (AIP-160).
  ['labels.team = "core" AND role = ROLE_USER', ["alice", "carol"]],
  ['labels.team = "core" role = ROLE_USER', ["alice", "carol"]],
  ["role = ROLE_ADMIN OR state = USER_STATE_SUSPENDED", ["admin", "bob", "carol"]],
  ["NOT role = ROLE_ADMIN", but("admin", "bob")],
  ["-role = ROLE_ADMIN", but("admin", "bob")],
  ["NOT labels.team:*", ["admin", "erin", "frank", "zoe"]],
  ["NOT (role = ROLE_ADMIN OR labels.team:*)", ["erin", "frank", "zoe"]],
  ['labels.tier:* AND (labels.tier = "gold" OR email : "erin")', ["alice", "erin"]],
  ['(labels.team = "core" OR labels.team = "edge") AND NOT state = USER_STATE_SUSPENDED', ["alice", "bob"]],
  ['labels.team = "edge" OR labels.tier = "gold" AND role = ROLE_USER', ["alice"]],
  ['((email = "alice@example.com"))', ["alice"]],
  ['NOT (NOT (labels.team = "core"))', ["alice", "carol"]],
  // SQL in a string literal is data: it matches nothing (or exactly the user holding that text).
  ['email = "\' OR 1=1 --"', []],
  ['email = "x\\"; drop table users; --"', []],
  ["display_name : \"%' OR '1'='1\"", []],
  ['labels.team = "\\" OR true --"', []],
  ["labels.team = \"core' OR 'a'='a\"", []],
  ['display_name = "Robert\'); DROP TABLE users;--"', ["bobby"]],
];

/** [filter, offset the message must point at]. */
const MALFORMED: [string, number][] = [
  ["email = ", 8],
  ['email == "a"', 7],
  ['emial = "a"', 0],
  ['password_hash = "x"', 0],
  ['id = "x"', 0],
  ['email = "a" AND nope:*', 16],
  ['(email = "a"', 12],
  ['email = "abc', 8],
  ['email = "a\\q"', 10],
  ["role = ADMIN", 7],
  ["role > ROLE_ADMIN", 5],
  ["state : USER_STATE_ACTIVE", 6],
  ['create_time > "yesterday"', 14],
  ['create_time > "2021-02-30T00:00:00Z"', 14],
  ["create_time > 2021", 14],
  ['create_time : "2021-01-01T00:00:00Z"', 12],
  ["email = alice", 8],
  ['email ~ "a"', 6],
  ['email = "a" OR', 14],
  ['AND email = "a"', 0],
  ['email = "a")', 11],
  ['labels = "x"', 0],
  ['labels.Team = "x"', 0],
  ["labels.team = core", 14],
  ["()", 0],
  [`${"(".repeat(40)}email = "a"${")".repeat(40)}`, 32],
];

let fixture: TestServer;
let fixtureToken = "";

describe("filters", () => {
  beforeAll(async () => {
    fixture = await startTestServer();
    await query(fixture.databaseUrl, FIXTURE);
    fixtureToken = await loginToken(fixture.url);
  });
  afterAll(() => fixture?.close());

  const names = (users: User[]) => users.map((u) => u.email.toLowerCase().split("@")[0]).sort();

  describe.each<TransportName>(["grpc", "connect-json-h1"])("over %s", (transport) => {
    it.each(CASES)("%j matches %j (show_deleted %s)", async (filter, expected, showDeleted = false) => {
      const res = await usersAs(fixture, fixtureToken, transport).listUsers({ filter, showDeleted, pageSize: 100 });
      expect(names(res.users)).toEqual([...expected].sort());
      expect(res.totalSize).toBe(expected.length);
      expect(res.nextPageToken).toBe("");
    });

    it.each(MALFORMED)("%j is INVALID_FILTER pointing at offset %i", async (filter, offset) => {
      const f = await failure(usersAs(fixture, fixtureToken, transport).listUsers({ filter }));
      expect(f.code).toBe(Code.InvalidArgument);
      expect(f.reason).toBe("INVALID_FILTER");
      expect(f.message).toMatch(new RegExp(`\\b(offset|position|index) ${offset}\\b`));
    });

    it.each([
      "name",
      "id",
      "password_hash",
      "email asc desc",
      "email,email",
      "email desc,",
      "create_time descending",
      ",",
    ])("order_by %j is INVALID_ORDER_BY", async (orderBy) => {
      const f = await failure(usersAs(fixture, fixtureToken, transport).listUsers({ orderBy }));
      expect(f.code).toBe(Code.InvalidArgument);
      expect(f.reason).toBe("INVALID_ORDER_BY");
      const named = orderBy.split(/[ ,]+/).find((w) => !["", "email", "desc", "create_time"].includes(w));
      if (named) expect(f.message).toContain(named);
    });
  });

  it("an unknown field is named in the message, and no column outside the contract can be filtered", async () => {
    for (const field of ["password_hash", "tokens_valid_after", "version", "delete_time", "labels"]) {
      const f = await failure(usersAs(fixture, fixtureToken).listUsers({ filter: `${field} = "x"` }));
      expect(f.reason).toBe("INVALID_FILTER");
      expect(f.message).toContain(field);
    }
  });

  it("injection attempts leave every table intact", async () => {
    const before = await query<{ n: string }>(fixture.databaseUrl, "select count(*)::text as n from users");
    const users = usersAs(fixture, fixtureToken);
    for (const filter of [
      'email = "\'; drop table users; --"',
      'display_name = "x\'); delete from users; --"',
      "labels.team = \"core'); update users set role = 'admin'; --\"",
      'email : "%\'; truncate users; --"',
    ]) {
      expect((await users.listUsers({ filter, showDeleted: true })).users).toEqual([]);
      let streamed = 0;
      for await (const b of users.streamUsers({ filter })) streamed += b.users.length;
      expect(streamed).toBe(0);
    }
    expect(await query<{ n: string }>(fixture.databaseUrl, "select count(*)::text as n from users")).toEqual(before);
    const admins = await query<{ n: string }>(
      fixture.databaseUrl,
      "select count(*)::text as n from users where role = 'admin'",
    );
    expect(admins[0].n).toBe("2");
    expect(names((await users.listUsers({ pageSize: 100 })).users)).toEqual(LIVE);
  });

  it("show_deleted returns soft-deleted users with state DELETED and delete_time", async () => {
    const users = usersAs(fixture, fixtureToken);
    const live = await users.listUsers({ pageSize: 100 });
    const all = await users.listUsers({ pageSize: 100, showDeleted: true });
    expect(live.totalSize).toBe(LIVE.length);
    expect(all.totalSize).toBe(LIVE.length + 1);
    const dave = all.users.find((u) => u.email === "dave@corp.io");
    expect(dave?.state).toBe(UserState.DELETED);
    expect(dave?.deleteTime?.seconds).toBe(BigInt(Date.parse("2021-04-02T00:00:00Z") / 1000));
    expect(live.users.some((u) => u.email === "dave@corp.io")).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------

const STABLE = 1200;
const CHURN = 300;

/**
 * 1,500 users in one statement: ties in every sort key (create_time in groups of 3, update_time in pairs,
 * display_name over 37 values), mixed-case emails; 1,200 "stable" users that stay, 300 "churn" users
 * deleted while paging.
 */
const SEED = `
insert into users (id, email, display_name, role, state, labels, version, create_time, update_time)
select gen_random_uuid(),
       case when i % 2 = 0 then 'User' || lpad(i::text, 5, '0') || '@Example.COM' else 'user' || lpad(i::text, 5, '0') || '@example.com' end,
       'Name ' || (i % 37),
       'user', 'active',
       jsonb_build_object('set', case when i <= ${STABLE} then 'stable' else 'churn' end),
       1,
       timestamptz '2024-01-01T00:00:00Z' + (i / 3) * interval '1 second',
       timestamptz '2024-06-01T00:00:00Z' + ((i * 7919) % ${(STABLE + CHURN) / 2}) * interval '1 millisecond'
from generate_series(1, ${STABLE + CHURN}) i;
analyze users`;

/** Three users whose keys land anywhere in the seeded ranges (so before and after any cursor). */
const INSERT_NEW = `
insert into users (id, email, display_name, role, state, labels, version, create_time, update_time)
select gen_random_uuid(),
       chr(97 + (random() * 25)::int) || 'new-' || gen_random_uuid() || '@example.com',
       'Name ' || (random() * 36)::int,
       'user', 'active', '{"set":"new"}', 1,
       timestamptz '2024-01-01T00:00:00Z' + (random() * 600)::int * interval '1 second',
       timestamptz '2024-06-01T00:00:00Z' + (random() * 800)::int * interval '1 millisecond'
from generate_series(1, 3)`;

type Key = (u: User) => string | number;
const KEYS: Record<string, Key> = {
  create_time: (u) => Number(u.createTime?.seconds) * 1000 + Math.floor((u.createTime?.nanos ?? 0) / 1e6),
  update_time: (u) => Number(u.updateTime?.seconds) * 1000 + Math.floor((u.updateTime?.nanos ?? 0) / 1e6),
  email: (u) => u.email.toLowerCase(),
  display_name: (u) => u.displayName,
};

/** Compares two users by an order_by (code-point order for text), ties broken by id. */
function comparator(orderBy: string): (a: User, b: User) => number {
  const keys = (orderBy.trim() === "" ? "create_time" : orderBy).split(",").map((item) => {
    const [field, dir] = item.trim().split(/\s+/);
    return { key: KEYS[field], sign: dir === "desc" ? -1 : 1 };
  });
  const cmp = (x: string | number, y: string | number) => (x < y ? -1 : x > y ? 1 : 0);
  return (a, b) => {
    for (const { key, sign } of keys) {
      const c = cmp(key(a), key(b));
      if (c !== 0) return c * sign;
    }
    return cmp(a.id, b.id);
  };
}

describe("paging", () => {
  let server: TestServer;
  let token = "";
  let db: pg.Client;
  let churnIds: string[] = [];
  let stableIds: Set<string>;
  let created = 0;

  beforeAll(async () => {
    server = await startTestServer();
    await query(server.databaseUrl, SEED);
    token = await loginToken(server.url);
    db = new pg.Client({ connectionString: server.databaseUrl });
    await db.connect();
    const rows = (await db.query<{ id: string; set: string }>("select id, labels->>'set' as set from users")).rows;
    stableIds = new Set(rows.filter((r) => r.set === "stable").map((r) => r.id));
    churnIds = rows.filter((r) => r.set === "churn").map((r) => r.id);
  });
  afterAll(async () => {
    await db?.end();
    await server?.close();
  });

  const liveCount = async (filter = "true") =>
    Number(
      (await db.query<{ n: string }>(`select count(*) as n from users where delete_time is null and ${filter}`)).rows[0]
        .n,
    );

  it.each([
    ["", ""],
    ["create_time desc", ""],
    ["update_time", ""],
    ["update_time desc", ""],
    ["email", ""],
    ["email desc", ""],
    ["display_name", ""],
    ["display_name desc", ""],
    ["display_name, create_time desc", ""],
    ["update_time desc,email", ""],
    ["display_name desc, update_time", 'labels.set = "stable" OR labels.set = "new"'],
  ])(
    "order_by %j (filter %j): no user that existed throughout is skipped or repeated while others come and go",
    async (orderBy, filter) => {
      const users = usersAs(server, token);
      const seen: User[] = [];
      let pageToken = "";
      let pages = 0;
      let firstTotal = 0;
      do {
        // Between pages: users created (with keys before and after the cursor) and deleted, through SQL and RPCs.
        if (pages > 0) {
          const victims = churnIds.splice(0, 3);
          await Promise.all([
            db.query(INSERT_NEW),
            victims.length > 0 ? users.deleteUser({ userId: victims[0] }) : null,
            victims.length > 1
              ? db.query("update users set state = 'deleted', delete_time = now() where id = any($1::uuid[])", [
                  victims.slice(1),
                ])
              : null,
            users.createUser({
              user: {
                email: `${String.fromCharCode(97 + pages)}-rpc-${++created}@example.com`,
                displayName: `Name ${pages}`,
                labels: { set: "new" },
              },
            }),
          ]);
        }
        // total_size is counted for the first page and carried by the tokens: the count as of page 1.
        if (pages === 0) firstTotal = await liveCount(filter ? "labels->>'set' in ('stable', 'new')" : "true");
        const page = await users.listUsers({ pageSize: 150, pageToken, orderBy, filter });
        expect(page.users.length).toBeLessThanOrEqual(150);
        expect(page.totalSize).toBe(firstTotal);
        seen.push(...page.users);
        pageToken = page.nextPageToken;
        if (pageToken !== "") expect(page.users.length).toBe(150);
        pages++;
      } while (pageToken !== "" && pages < 100);

      expect(pages).toBeGreaterThanOrEqual(9);
      const ids = seen.map((u) => u.id);
      expect(new Set(ids).size).toBe(ids.length);
      const stableSeen = ids.filter((id) => stableIds.has(id));
      expect(stableSeen.length).toBe(STABLE);
      const compare = comparator(orderBy);
      for (let i = 1; i < seen.length; i++) {
        if (compare(seen[i - 1], seen[i]) >= 0)
          throw new Error(`out of order at ${i}: ${seen[i - 1].id} then ${seen[i].id}`);
      }
    },
  );

  it("total_size of the pages after the first is the first page's: users created and deleted since do not change it", async () => {
    const users = usersAs(server, token);
    const filter = 'labels.set = "stable" OR labels.set = "new"';
    const first = await users.listUsers({ pageSize: 10, filter });
    const counted = await liveCount("labels->>'set' in ('stable', 'new')");
    expect(first.totalSize).toBe(counted);
    // Between page 1 and page 2: four matching users created (one through the API), one deleted.
    await Promise.all([
      db.query(INSERT_NEW),
      users.createUser({ user: { email: `total-${++created}@example.com`, displayName: "T", labels: { set: "new" } } }),
    ]);
    const victim = await db.query<{ id: string }>(
      "select id from users where labels->>'set' = 'new' and delete_time is null limit 1",
    );
    await users.deleteUser({ userId: victim.rows[0].id });
    const now = await liveCount("labels->>'set' in ('stable', 'new')");
    expect(now).not.toBe(counted);
    const second = await users.listUsers({ pageSize: 10, filter, pageToken: first.nextPageToken });
    expect(second.totalSize).toBe(first.totalSize);
    const third = await users.listUsers({ pageSize: 10, filter, pageToken: second.nextPageToken });
    expect(third.totalSize).toBe(first.totalSize);
    // A new walk counts again.
    expect((await users.listUsers({ pageSize: 10, filter })).totalSize).toBe(now);
  });

  it("page_size defaults to 50 and is clamped at 1000; negative is INVALID_ARGUMENT", async () => {
    const users = usersAs(server, token);
    const first = await users.listUsers({});
    expect(first.users.length).toBe(50);
    expect(first.nextPageToken).not.toBe("");
    const huge = await users.listUsers({ pageSize: 5000 });
    expect(huge.users.length).toBe(1000);
    expect(huge.nextPageToken).not.toBe("");
    const next = await users.listUsers({ pageSize: 5000, pageToken: huge.nextPageToken });
    expect(next.users[0].id).not.toBe(huge.users[999].id);
    expect(next.totalSize).toBe(huge.totalSize);
    expect((await users.listUsers({ pageSize: 1000 })).users.length).toBe(1000);
    expect((await users.listUsers({ pageSize: 1 })).users.length).toBe(1);
    const f = await failure(users.listUsers({ pageSize: -1 }));
    expect(f.code).toBe(Code.InvalidArgument);
  });

  it("the last page has no next_page_token; total_size counts every match, not the page", async () => {
    const users = usersAs(server, token);
    const n = await liveCount("role = 'admin'");
    const page = await users.listUsers({ filter: "role = ROLE_ADMIN", pageSize: 10 });
    expect(page.users.length).toBe(n);
    expect(page.nextPageToken).toBe("");
    const total = await liveCount();
    const small = await users.listUsers({ pageSize: 3 });
    expect(small.totalSize).toBe(total);
    expect(small.users.length).toBe(3);
  });

  describe("page tokens", () => {
    const base = { filter: 'labels.set = "stable"', orderBy: "email desc", showDeleted: false, pageSize: 10 };
    let pageToken = "";
    beforeAll(async () => {
      pageToken = (await usersAs(server, token).listUsers(base)).nextPageToken;
    });

    it("work with the request they were made for (page_size may change)", async () => {
      const users = usersAs(server, token);
      const first = await users.listUsers(base);
      const second = await users.listUsers({ ...base, pageToken: first.nextPageToken });
      expect(second.users.length).toBe(10);
      expect(second.users[0].email.toLowerCase() < first.users[9].email.toLowerCase()).toBe(true);
      expect((await users.listUsers({ ...base, pageSize: 25, pageToken })).users.length).toBe(25);
      // The same token works over Connect JSON too.
      expect((await usersAs(server, token, "connect-json-h1").listUsers({ ...base, pageToken })).users).toEqual(
        second.users,
      );
    });

    it.each([
      ["another filter", { filter: 'labels.set = "churn"' }],
      ["no filter", { filter: "" }],
      ["another order_by", { orderBy: "email" }],
      ["the default order_by", { orderBy: "" }],
      ["show_deleted", { showDeleted: true }],
    ])("used with %s is INVALID_PAGE_TOKEN", async (_what, change) => {
      const f = await failure(usersAs(server, token).listUsers({ ...base, ...change, pageToken }));
      expect(f.code).toBe(Code.InvalidArgument);
      expect(f.reason).toBe("INVALID_PAGE_TOKEN");
    });

    it("a token whose total was changed is INVALID_PAGE_TOKEN", async () => {
      const raw = Buffer.from(pageToken, "base64url");
      const body = JSON.parse(raw.subarray(32).toString("utf8")) as unknown[];
      for (const total of [0, 1, 999_999_999]) {
        const forged = Buffer.concat([raw.subarray(0, 32), Buffer.from(JSON.stringify([...body.slice(0, 3), total]))]);
        const f = await failure(usersAs(server, token).listUsers({ ...base, pageToken: forged.toString("base64url") }));
        expect(f.code).toBe(Code.InvalidArgument);
        expect(f.reason).toBe("INVALID_PAGE_TOKEN");
      }
    });

    it("a modified, truncated, extended or made-up token is INVALID_PAGE_TOKEN", async () => {
      const users = usersAs(server, token);
      const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
      const bytes = Buffer.from(pageToken, "base64url");
      const bitFlipped = (i: number) => {
        const b = Buffer.from(bytes);
        b[i] ^= 1;
        return b.toString("base64url");
      };
      const bad = [
        flip(pageToken, Math.floor(pageToken.length / 2)),
        flip(pageToken, 0),
        flip(pageToken, pageToken.length - 2),
        bitFlipped(bytes.length - 3),
        bitFlipped(40),
        pageToken.slice(0, -4),
        `${pageToken}AAAA`,
        `${pageToken}=`,
        pageToken.replaceAll("-", "+").replaceAll("_", "/"),
        "garbage",
        Buffer.from(JSON.stringify({ id: "00000000-0000-0000-0000-000000000000" })).toString("base64url"),
      ].filter((t) => t !== pageToken);
      for (const t of bad) {
        const f = await failure(users.listUsers({ ...base, pageToken: t }));
        expect(f.reason, t).toBe("INVALID_PAGE_TOKEN");
        expect(f.code).toBe(Code.InvalidArgument);
      }
    });
  });
});
