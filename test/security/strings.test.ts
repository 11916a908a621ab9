/**
 * Strings that PostgreSQL cannot store, over the wire: a NUL character (U+0000) in any string field, and
 * invalid UTF-8 in a binary-encoded string field. Each is INVALID_ARGUMENT, reason INVALID_ARGUMENT, with a
 * google.rpc.BadRequest field violation naming the field, and changes nothing (rows checked). Before the
 * string check, these reached the database and came back as INTERNAL or even UNAVAILABLE, so clients
 * retried a request that could never succeed.
 */
import { type DescMethodUnary, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import type { ImportUsersRequest } from "../../gen/user/v1/user_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { fromGrpcJsError, type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { drain } from "./expect.ts";

let server: TestServer;
let grpcjs: GrpcJs;
let admin: string;
let self: Member;

beforeAll(async () => {
  server = await startTestServer();
  grpcjs = grpcJs(server.port);
  admin = await adminToken(server.url);
  self = await createMember(server.url, admin, { prefix: "strings", labels: { team: "blue" } });
});
afterEach(() => {
  // Nothing reached the database as a bad query: no error was unexpected.
  expect(server.logText()).not.toContain("unexpected error");
});
afterAll(async () => {
  grpcjs?.close();
  await server?.close();
});

const NUL = "\u0000";
const asAdmin = (t: TransportName = "grpc"): Clients => clients(server.url, t, () => admin);
const asSelf = (t: TransportName = "grpc"): Clients => clients(server.url, t, () => self.token);

/** Expects INVALID_ARGUMENT / INVALID_ARGUMENT with a field violation for exactly `field`. */
async function refusedAt(call: Promise<unknown>, field: string): Promise<void> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({
    code: Code[Code.InvalidArgument],
    reason: "INVALID_ARGUMENT",
  });
  expect(f.violations).toContain(field);
  expect(f.message).not.toContain(NUL);
}

/** The stored row of the member (what must not change). */
async function selfRow() {
  const [row] = await query(
    server.databaseUrl,
    "select display_name, labels, version, update_time from users where id = $1",
    [self.user.id],
  );
  return row;
}

const usersWithEmail = async (email: string) =>
  (await query(server.databaseUrl, "select 1 from users where lower(email) = lower($1)", [email])).length;

describe("a NUL character", () => {
  const transports: TransportName[] = ["grpc", "connect-json-h1"];

  it.each(transports)("in display_name is refused by CreateUser and UpdateUser (%s)", async (t) => {
    const email = uniqueEmail("nul");
    await refusedAt(
      asAdmin(t).users.createUser({ user: { email, displayName: `Ann${NUL}Smith` }, password: "long-enough-pw-1" }),
      "user.display_name",
    );
    expect(await usersWithEmail(email)).toBe(0);

    const before = await selfRow();
    await refusedAt(
      asSelf(t).users.updateUser({
        user: { id: self.user.id, displayName: `Ann${NUL}` },
        updateMask: { paths: ["display_name"] },
      }),
      "user.display_name",
    );
    expect(await selfRow()).toEqual(before);
  });

  it.each(transports)("in a label value and in a label key is refused with the label's path (%s)", async (t) => {
    const before = await selfRow();
    const update = (labels: Record<string, string>) =>
      asSelf(t).users.updateUser({ user: { id: self.user.id, labels }, updateMask: { paths: ["labels"] } });
    await refusedAt(update({ team: `red${NUL}` }), 'user.labels["team"]');
    await refusedAt(update({ [`te${NUL}am`]: "red" }), 'user.labels["te\\u0000am"]');
    expect(await selfRow()).toEqual(before);

    const email = uniqueEmail("nul-label");
    await refusedAt(
      asAdmin(t).users.createUser({ user: { email, displayName: "Labelled", labels: { team: NUL } } }),
      'user.labels["team"]',
    );
    expect(await usersWithEmail(email)).toBe(0);
  });

  it("in Login's email or password is refused, and counts as no failed login", async () => {
    const auth = clients(server.url, "grpc").auth;
    await refusedAt(auth.login({ email: `${self.email}${NUL}`, password: self.password }), "email");
    await refusedAt(auth.login({ email: self.email, password: `${self.password}${NUL}` }), "password");
    await refusedAt(
      clients(server.url, "connect-json-h1").auth.login({ email: `${NUL}@example.com`, password: "x" }),
      "email",
    );
    const failures = await query(server.databaseUrl, "select 1 from login_failures");
    expect(failures).toHaveLength(0);
    // The account is not locked or otherwise touched: the right password still works.
    expect((await auth.login({ email: self.email, password: self.password })).user?.id).toBe(self.user.id);
  });

  it("in SignUp, ChangePassword, RefreshToken and Logout is refused with the field named", async () => {
    const auth = clients(server.url, "grpc").auth;
    const email = uniqueEmail("nul-signup");
    await refusedAt(auth.signUp({ email, password: "long-enough-pw-1", displayName: `Sign${NUL}Up` }), "display_name");
    await refusedAt(auth.signUp({ email: `${NUL}${email}`, password: "long-enough-pw-1", displayName: "S" }), "email");
    expect(await usersWithEmail(email)).toBe(0);
    await refusedAt(
      asSelf().auth.changePassword({ currentPassword: self.password, newPassword: `new-password${NUL}` }),
      "new_password",
    );
    await refusedAt(auth.refreshToken({ refreshToken: `abc${NUL}` }), "refresh_token");
    await refusedAt(auth.logout({ refreshToken: `abc${NUL}` }), "refresh_token");
    // The password did not change.
    expect((await auth.login({ email: self.email, password: self.password })).user?.id).toBe(self.user.id);
  });

  it("in a filter, an order_by or an id is refused (unary and server-streaming)", async () => {
    const users = asAdmin().users;
    await refusedAt(users.listUsers({ filter: `display_name = "a${NUL}"` }), "filter");
    await refusedAt(users.listUsers({ orderBy: `email${NUL}` }), "order_by");
    await refusedAt(users.getUser({ userId: `${self.user.id}${NUL}` }), "user_id");
    await refusedAt(users.batchGetUsers({ userIds: [self.user.id, `x${NUL}`] }), "user_ids[1]");
    await refusedAt(drain(users.streamUsers({ filter: `email = "${NUL}"` })), "filter");
    await refusedAt(drain(asAdmin("connect-json-h1").users.streamUsers({ filter: NUL })), "filter");
  });

  it("in ImportUsers rows fails those rows only; the others are imported and the stream goes on", async () => {
    const prefix = `imp-${Date.now()}`;
    const rows: Partial<Omit<ImportUsersRequest, "$typeName">>[] = [
      { user: { email: `${prefix}-0@example.com`, displayName: `Bad${NUL}` } as never, credential: pw() },
      { user: { email: `${prefix}-1@example.com`, displayName: "Good One" } as never, credential: pw() },
      {
        user: { email: `${prefix}-2@example.com`, displayName: "Bad Label", labels: { k: NUL } } as never,
        credential: pw(),
      },
      {
        user: { email: `${prefix}-3@example.com`, displayName: "Bad Password" } as never,
        credential: { case: "password", value: `password${NUL}1` },
      },
      { user: { email: `${prefix}-4${NUL}@example.com`, displayName: "Bad Email" } as never, credential: pw() },
      { user: { email: `${prefix}-5@example.com`, displayName: "Good Two" } as never, credential: pw() },
    ];
    async function* stream() {
      yield* rows;
    }
    for (const t of ["grpc", "connect-json-h1"] as TransportName[]) {
      const res = await asAdmin(t).users.importUsers(stream());
      const failures = res.failures.map((f) => [f.index, f.reason.split(":")[0]]);
      if (t === "grpc") expect(res.createdCount).toBe(2);
      else expect(res.skippedCount).toBe(2); // the second run finds the two good rows already there
      expect(failures).toEqual([
        [0, "user.display_name"],
        [2, 'user.labels["k"]'],
        [3, "password"],
        [4, "user.email"],
      ]);
      expect(res.failures.map((f) => f.email).join("")).not.toContain(NUL);
    }
    const stored = await query<{ email: string }>(
      server.databaseUrl,
      "select email from users where email like $1 order by email",
      [`${prefix}-%`],
    );
    expect(stored.map((r) => r.email)).toEqual([`${prefix}-1@example.com`, `${prefix}-5@example.com`]);
  });
});

function pw() {
  return { case: "password" as const, value: "imported-password-1" };
}

/** Length-delimited field `no` holding `bytes` (short fields only). */
function field(no: number, bytes: Buffer): Buffer {
  if (bytes.byteLength > 127) throw new Error("short fields only");
  return Buffer.concat([Buffer.from([(no << 3) | 2, bytes.byteLength]), bytes]);
}

/** A unary call through grpc-js whose request body is the given raw bytes. */
function rawCall<M extends DescMethodUnary>(
  method: M,
  body: Buffer,
  token?: string,
): Promise<MessageShape<M["output"]>> {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise((done, fail) => {
    grpcjs.client.makeUnaryRequest(
      `/${method.parent.typeName}/${method.name}`,
      (b: Buffer) => b,
      (b: Buffer) => fromBinary(method.output, b),
      body,
      md,
      (error, response) => (error ? fail(fromGrpcJsError(error)) : done(response as never)),
    );
  });
}

describe("invalid UTF-8 in a binary string field, sent raw over gRPC", () => {
  const bad = Buffer.from([0x41, 0xff, 0xfe, 0xed, 0xa0, 0x80]);

  it("is refused with the field named: nested, in a map, in a repeated field, in a oneof", async () => {
    const email = uniqueEmail("utf8");
    // CreateUserRequest { user (1) { email (2), display_name (3) } }
    const create = field(1, Buffer.concat([field(2, Buffer.from(email)), field(3, bad)]));
    await refusedAt(rawCall(UserService.method.createUser, create, admin), "user.display_name");
    expect(await usersWithEmail(email)).toBe(0);

    // UpdateUserRequest { user (1) { id (1), labels (6) { key (1), value (2) } }, update_mask (2) { paths (1) } }
    const before = await selfRow();
    const entry = field(6, Buffer.concat([field(1, Buffer.from("team")), field(2, bad)]));
    const update = Buffer.concat([
      field(1, Buffer.concat([field(1, Buffer.from(self.user.id)), entry])),
      field(2, field(1, Buffer.from("labels"))),
    ]);
    await refusedAt(rawCall(UserService.method.updateUser, update, self.token), 'user.labels["team"]');
    expect(await selfRow()).toEqual(before);

    // BatchGetUsersRequest { user_ids (1) repeated }
    const batch = Buffer.concat([field(1, Buffer.from(self.user.id)), field(1, bad)]);
    await refusedAt(rawCall(UserService.method.batchGetUsers, batch, admin), "user_ids[1]");

    // LoginRequest { email (1), password (2) }
    const login = Buffer.concat([field(1, Buffer.from(self.email)), field(2, bad)]);
    await refusedAt(rawCall(AuthService.method.login, login), "password");
    expect(await query(server.databaseUrl, "select 1 from login_failures")).toHaveLength(0);
  });

  it("fails only its own ImportUsers row; the stream goes on", async () => {
    const email = uniqueEmail("utf8-import");
    // ImportUsersRequest { user (1) { email (2), display_name (3) }, password (2) }
    const row = (e: string, name: Buffer) =>
      Buffer.concat([
        field(1, Buffer.concat([field(2, Buffer.from(e)), field(3, name)])),
        field(2, Buffer.from("imported-password-1")),
      ]);
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${admin}`);
    const res = await new Promise<MessageShape<typeof UserService.method.importUsers.output>>((done, fail) => {
      const call = grpcjs.client.makeClientStreamRequest(
        `/${UserService.typeName}/${UserService.method.importUsers.name}`,
        (b: Buffer) => b,
        (b: Buffer) => fromBinary(UserService.method.importUsers.output, b),
        md,
        (error, response) => (error ? fail(fromGrpcJsError(error)) : done(response as never)),
      );
      call.write(row(`bad-${email}`, bad));
      call.write(row(email, Buffer.from("Fine")));
      call.end();
    });
    expect(res.failures.map((f) => [f.index, f.reason.split(":")[0]])).toEqual([[0, "user.display_name"]]);
    expect(res.createdCount).toBe(1);
    expect(await usersWithEmail(email)).toBe(1);
    expect(await usersWithEmail(`bad-${email}`)).toBe(0);
  });
});

describe("invalid UTF-8 in a Connect JSON body", () => {
  // JSON text must be UTF-8 (RFC 8259): the body is refused as a whole, before any field is looked at.
  const json = (text: string, bad: number[]) => {
    const [before, after] = text.split("@BAD@");
    return Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from(after)]);
  };

  it("is INVALID_ARGUMENT for a unary call, and changes nothing", async () => {
    const before = await selfRow();
    const res = await fetch(`${server.url}/user.v1.UserService/UpdateUser`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${self.token}` },
      body: json(`{"user":{"id":"${self.user.id}","displayName":"A@BAD@"},"updateMask":"displayName"}`, [0xff, 0xfe]),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; details?: { type: string }[] };
    expect(body.code).toBe("invalid_argument");
    expect(await selfRow()).toEqual(before);
  });

  it("is INVALID_ARGUMENT for a streaming call (Connect JSON envelope)", async () => {
    const message = json('{"filter":"email = \\"a@BAD@\\""}', [0xed, 0xa0, 0x80]);
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
    envelope.writeUInt32BE(message.length, 1);
    const res = await fetch(`${server.url}/user.v1.UserService/StreamUsers`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${admin}` },
      body: envelope,
    });
    const text = Buffer.from(await res.arrayBuffer());
    // The end-of-stream envelope (flag 0x02) holds the error.
    const end = JSON.parse(text.subarray(5).toString()) as { error?: { code: string } };
    expect(text[0]).toBe(0x02);
    expect(end.error?.code).toBe("invalid_argument");
  });

  it("as a lone surrogate escape (\\ud800) is INVALID_ARGUMENT too", async () => {
    const res = await fetch(`${server.url}/auth.v1.AuthService/Login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: `{"email":"${self.email}","password":"pw\\ud800"}`,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });
});

describe("a value the database refuses (SQLSTATE classes 22, 23, 54)", () => {
  // The validation rules normally stop such values first, so this server's database is made stricter than
  // the rules: a short column, a check constraint, an index whose rows can get too big. Each refusal is
  // INVALID_ARGUMENT with a generic message (never SQL, the value or the constraint), never INTERNAL or
  // UNAVAILABLE (not worth a retry), and is logged by error name and SQLSTATE only.
  let strict: TestServer;
  let token: string;

  beforeAll(async () => {
    strict = await startTestServer();
    token = await adminToken(strict.url);
    await query(
      strict.databaseUrl,
      "alter table users add constraint name_not_banned check (display_name <> 'Banned Name')",
    );
    await query(strict.databaseUrl, "alter table users alter column display_name type varchar(40)");
    // An index entry of ~6 KB of hex, more than a btree page takes (54000 program_limit_exceeded), for
    // names starting with "Huge" only.
    await query(
      strict.databaseUrl,
      `create function pad(t text) returns text language sql immutable
         as $$ select string_agg(md5(t || i::text), '') from generate_series(1, 200) i $$`,
    );
    await query(
      strict.databaseUrl,
      "create index users_padded_idx on users (pad(display_name)) where display_name like 'Huge%'",
    );
  });
  afterAll(() => strict?.close());

  const cases: [string, string, string][] = [
    ["22001 string_data_right_truncation", "N".repeat(41), "22001"],
    ["23514 check_violation", "Banned Name", "23514"],
    ["54000 program_limit_exceeded (index row too big)", "Huge Name", "54000"],
  ];

  it.each(cases)("%s is INVALID_ARGUMENT and stores nothing", async (_name, displayName, state) => {
    const email = uniqueEmail("db-refused");
    const f = await failure(
      clients(strict.url, "grpc", () => token).users.createUser({ user: { email, displayName } }),
    );
    expect({ code: Code[f.code], reason: f.reason }).toEqual({
      code: Code[Code.InvalidArgument],
      reason: "INVALID_ARGUMENT",
    });
    expect(f.message).not.toMatch(/insert|users|name_not_banned|varchar|Banned|NNNN|character varying/i);
    expect((await query(strict.databaseUrl, "select 1 from users where email = $1", [email])).length).toBe(0);
    const line = strict.logs.find((l) => l.msg === "request refused by the database" && l.sqlState === state);
    expect(line).toBeDefined();
    expect(JSON.stringify(line)).not.toMatch(/insert|Banned|NNNN/i);
    expect(strict.logText()).not.toContain("unexpected error");
  });
});
