/**
 * StreamUsers over the wire: 100,000 users (seeded with one SQL statement) arrive exactly once, in id
 * order, at most 500 per message, over gRPC; smaller filtered runs over Connect (HTTP/1.1) and gRPC-web;
 * filter and show_deleted apply; a client that cancels after the first batch leaves no query running and
 * the server keeps serving.
 */
import { create, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamUsersRequestSchema } from "../../gen/user/v1/user_service_pb.js";
import { failure, grpcJsClient, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { loginToken, sleep, until, usersAs } from "./support.ts";

const N = 100_000;

let server: TestServer;
let token = "";

beforeAll(async () => {
  server = await startTestServer();
  await query(
    server.databaseUrl,
    `insert into users (id, email, display_name, role, state, labels, version, create_time, update_time, delete_time)
     select gen_random_uuid(), 's' || i || '@example.com', 'Streamed ' || i, 'user',
            case when i % 1000 = 7 then 'deleted' else 'active' end,
            jsonb_build_object('k', (i % 50)::text), 1, now(), now(),
            case when i % 1000 = 7 then now() end
     from generate_series(1, ${N}) i;
     -- A table that has been live has statistics; without them the planner misjudges a fresh bulk load.
     analyze users`,
  );
  token = await loginToken(server.url);
}, 120_000);
afterAll(() => server?.close());

/** Ids the database holds for a condition, in id order. */
async function idsWhere(where: string): Promise<string[]> {
  return (await query<{ id: string }>(server.databaseUrl, `select id::text from users where ${where} order by id`)).map(
    (r) => r.id,
  );
}

/** Streams to the end; returns every id in arrival order and the size of every message. */
async function streamAll(transport: TransportName, req: { filter?: string; showDeleted?: boolean }) {
  const ids: string[] = [];
  const sizes: number[] = [];
  for await (const batch of usersAs(server, token, transport).streamUsers(req)) {
    sizes.push(batch.users.length);
    for (const u of batch.users) ids.push(u.id);
  }
  return { ids, sizes };
}

/**
 * The user ids of one StreamUsersResponse, read straight from the wire (users = 1, User.id = 1): the
 * client shares the test process with the server, so decoding 100,000 whole users would only slow it.
 */
function idsOf(message: Uint8Array): string[] {
  const ids: string[] = [];
  const r = new BinaryReader(message);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field !== 1 || wire !== WireType.LengthDelimited) {
      r.skip(wire);
      continue;
    }
    const u = new BinaryReader(r.bytes());
    let id = "";
    while (u.pos < u.len) {
      const [f, w] = u.tag();
      if (f === 1 && w === WireType.LengthDelimited) id = u.string();
      else u.skip(w);
    }
    ids.push(id);
  }
  return ids;
}

/** StreamUsers through @grpc/grpc-js, the gRPC client most backends use. */
async function streamGrpcJs(req: { filter?: string }) {
  const client = grpcJsClient(server.port);
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const ids: string[] = [];
  const sizes: number[] = [];
  try {
    const call = client.makeServerStreamRequest(
      "/user.v1.UserService/StreamUsers",
      (m: MessageShape<typeof StreamUsersRequestSchema>) => Buffer.from(toBinary(StreamUsersRequestSchema, m)),
      (b: Buffer) => idsOf(b),
      create(StreamUsersRequestSchema, req),
      md,
    );
    for await (const batch of call as AsyncIterable<string[]>) {
      sizes.push(batch.length);
      for (const id of batch) ids.push(id);
    }
  } finally {
    client.close();
  }
  return { ids, sizes };
}

function expectBatches(sizes: number[], total: number) {
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(total);
  expect(Math.max(...sizes)).toBeLessThanOrEqual(500);
  // No empty messages in the middle of the stream.
  expect(sizes.slice(0, -1).every((n) => n > 0)).toBe(true);
}

describe("StreamUsers", () => {
  it(`delivers ${N.toLocaleString("en")} users exactly once, in id order, at most 500 per message (gRPC)`, async () => {
    const expected = await idsWhere("delete_time is null");
    expect(expected.length).toBe(N - N / 1000 + 1); // + the bootstrap admin
    const { ids, sizes } = await streamGrpcJs({});
    expectBatches(sizes, expected.length);
    // Same ids in the same order as the database's uuid order: each exactly once, sorted.
    expect(ids.length).toBe(expected.length);
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== expected[i]) throw new Error(`id ${i} is ${ids[i]}, expected ${expected[i]}`);
    }
  }, 180_000);

  it.each<TransportName>(["connect-h1", "grpc-web-h1", "connect-json-h1"])(
    "applies a filter over %s (2,000 users)",
    async (transport) => {
      const expected = await idsWhere("delete_time is null and labels->>'k' = '3'");
      expect(expected.length).toBe(2000);
      const { ids, sizes } = await streamAll(transport, { filter: 'labels.k = "3"' });
      expectBatches(sizes, expected.length);
      expect(ids).toEqual(expected);
    },
    60_000,
  );

  it("applies AND/OR/NOT filters and show_deleted", async () => {
    const f = 'labels.k = "7" AND (email : "S99" OR NOT display_name : "1")';
    const like = "labels->>'k' = '7' and (lower(email) like '%s99%' or display_name not like '%1%')";
    expect((await streamAll("grpc", { filter: f })).ids).toEqual(await idsWhere(`delete_time is null and ${like}`));
    const withDeleted = await streamAll("grpc", { filter: f, showDeleted: true });
    expect(withDeleted.ids).toEqual(await idsWhere(like));
    expect(withDeleted.ids.length).toBeGreaterThan((await idsWhere(`delete_time is null and ${like}`)).length);
    expect((await streamAll("grpc", { filter: "state = USER_STATE_DELETED", showDeleted: true })).ids).toEqual(
      await idsWhere("state = 'deleted'"),
    );
    expect((await streamAll("grpc", { filter: 'email = "nobody@example.com"' })).ids).toEqual([]);
  }, 60_000);

  it("rejects a malformed filter with INVALID_FILTER", async () => {
    const f = await failure(streamAll("grpc", { filter: "labels.k = 3" }));
    expect(f.code).toBe(Code.InvalidArgument);
    expect(f.reason).toBe("INVALID_FILTER");
    const g = await failure(streamAll("connect-h1", { filter: "nope = 1" }));
    expect(g.reason).toBe("INVALID_FILTER");
  });

  it("a client that cancels after the first batch leaves no query running, and the server keeps serving", async () => {
    // The server's queries on this database, other than ours.
    const serverQueries = () =>
      query<{ state: string; query_start: Date; query: string }>(
        server.databaseUrl,
        `select state, query_start, query from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid() and query ilike '%from users%'`,
      );
    // More cancelled streams than the pool has connections (DB_POOL_MAX=10), over two protocols.
    for (let i = 0; i < 12; i++) {
      const ac = new AbortController();
      const stream = usersAs(server, token, i % 2 ? "connect-h1" : "grpc").streamUsers({}, { signal: ac.signal });
      let batches = 0;
      try {
        for await (const b of stream) {
          expect(b.users.length).toBe(500);
          batches++;
          ac.abort();
        }
      } catch (err) {
        expect(ac.signal.aborted).toBe(true);
        void err;
      }
      expect(batches).toBe(1);
    }
    // Shortly after, nothing of those streams is running...
    await until(
      async () => (await serverQueries()).every((q) => q.state !== "active"),
      "the stream queries to stop",
      2000,
    );
    const settled = new Date();
    // ...and nothing starts again: a stream still reading would keep issuing page queries.
    for (let i = 0; i < 10; i++) {
      await sleep(50);
      const running = await serverQueries();
      expect(running.filter((q) => q.state === "active")).toEqual([]);
      expect(running.filter((q) => q.query_start > settled).map((q) => q.query)).toEqual([]);
    }
    // The server still serves lists and whole streams.
    expect((await usersAs(server, token).listUsers({ pageSize: 5 })).users.length).toBe(5);
    const { ids } = await streamAll("grpc", { filter: 'labels.k = "1"' });
    expect(ids).toEqual(await idsWhere("delete_time is null and labels->>'k' = '1'"));
  }, 60_000);
});
