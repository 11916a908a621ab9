/**
 * Access control against a ROLE_USER caller (OWASP API1 broken object-level and API5 broken function-level
 * authorization), over the wire: every admin method, streams included, is PERMISSION_DENIED; reading or
 * changing another user is PERMISSION_DENIED, even for an id that does not exist (no enumeration); and a
 * user changing its own role, state or email, directly or through `*`, is PERMISSION_DENIED with the row
 * untouched. Positive controls show the same calls work for the admin, and for the user on itself.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { drain, expectDenied } from "./expect.ts";

const m = UserService.method;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let self: Member;
let other: Member;
let asSelf: Clients;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  [self, other] = await Promise.all([
    createMember(server.url, admin, { prefix: "self", labels: { team: "core" } }),
    createMember(server.url, admin, { prefix: "other" }),
  ]);
  asSelf = clients(server.url, "grpc", () => self.token);
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

type Row = {
  email: string;
  display_name: string;
  role: string;
  state: string;
  labels: Record<string, string>;
  version: number;
};

async function rows(): Promise<Row[]> {
  return query<Row>(
    server.databaseUrl,
    "select email, display_name, role, state, labels, version from users order by id",
  );
}

async function* oneImport(email: string) {
  // A known argon2id hash would let the attacker log in as the imported admin.
  yield {
    user: { email, displayName: "Imported", role: Role.ADMIN },
    credential: { case: "password" as const, value: "imported-password" },
  };
}

describe("a ROLE_USER calling an admin method", () => {
  const calls: [string, () => Promise<unknown>][] = [
    ["ListUsers", () => grpc.call(m.listUsers, {}, self.token)],
    [
      "ListUsers with show_deleted",
      () => grpc.call(m.listUsers, { showDeleted: true, filter: "role = ROLE_ADMIN" }, self.token),
    ],
    ["BatchGetUsers of others", () => grpc.call(m.batchGetUsers, { userIds: [other.user.id] }, self.token)],
    ["BatchGetUsers of itself only", () => grpc.call(m.batchGetUsers, { userIds: [self.user.id] }, self.token)],
    [
      "CreateUser of an admin",
      () =>
        grpc.call(
          m.createUser,
          { user: { email: uniqueEmail("evil"), displayName: "Evil", role: Role.ADMIN }, password: "evil-password" },
          self.token,
        ),
    ],
    [
      "CreateUser of a user",
      () => grpc.call(m.createUser, { user: { email: uniqueEmail("evil"), displayName: "Evil" } }, self.token),
    ],
    ["DeleteUser of another", () => grpc.call(m.deleteUser, { userId: other.user.id }, self.token)],
    ["DeleteUser of itself", () => grpc.call(m.deleteUser, { userId: self.user.id }, self.token)],
    ["UndeleteUser", () => grpc.call(m.undeleteUser, { userId: other.user.id }, self.token)],
    ["StreamUsers", () => drain(asSelf.users.streamUsers({}))],
    ["WatchUsers", () => drain(asSelf.users.watchUsers({ sendInitial: true }))],
    ["ImportUsers", () => asSelf.users.importUsers(oneImport(uniqueEmail("imported")))],
    [
      "StreamUsers over Connect",
      () => drain(clients(server.url, "connect-h1", () => self.token).users.streamUsers({})),
    ],
    [
      "WatchUsers over gRPC-web",
      () => drain(clients(server.url, "grpc-web-h1", () => self.token).users.watchUsers({})),
    ],
  ];

  it.each(calls)("is PERMISSION_DENIED: %s", async (_name, call) => {
    const before = await rows();
    await expectDenied(call());
    expect(await rows()).toEqual(before);
  });
});

describe("a ROLE_USER reaching another user", () => {
  it("cannot read it", async () => {
    await expectDenied(grpc.call(m.getUser, { userId: other.user.id }, self.token));
  });

  it("cannot tell an existing user from a missing one (PERMISSION_DENIED for both)", async () => {
    await expectDenied(grpc.call(m.getUser, { userId: randomUUID() }, self.token));
    await expectDenied(
      grpc.call(
        m.updateUser,
        { user: { id: randomUUID(), displayName: "x" }, updateMask: { paths: ["display_name"] } },
        self.token,
      ),
    );
  });

  it.each([["display_name"], ["labels"], ["role"], ["*"]])("cannot update it (mask %s)", async (path) => {
    const before = await rows();
    await expectDenied(
      grpc.call(
        m.updateUser,
        {
          user: { id: other.user.id, displayName: "Hijacked", labels: { owned: "yes" }, role: Role.USER },
          updateMask: { paths: [path] },
        },
        self.token,
      ),
    );
    expect(await rows()).toEqual(before);
  });

  it("cannot read a deleted user either", async () => {
    const victim = await createMember(server.url, admin, { prefix: "victim" });
    await grpc.call(m.deleteUser, { userId: victim.user.id }, admin);
    await expectDenied(grpc.call(m.getUser, { userId: victim.user.id }, self.token));
  });
});

describe("a ROLE_USER updating itself", () => {
  const forbidden: [string, string[], object][] = [
    ["its role", ["role"], { role: Role.ADMIN }],
    ["its state", ["state"], { state: UserState.ACTIVE }],
    ["its email", ["email"], { email: uniqueEmail("taken-over") }],
    [
      "everything via *",
      ["*"],
      { role: Role.ADMIN, displayName: "Me", email: uniqueEmail("star"), state: UserState.ACTIVE },
    ],
    ["display_name and role together", ["display_name", "role"], { role: Role.ADMIN, displayName: "Me" }],
    ["labels and email together", ["labels", "email"], { labels: { a: "b" }, email: uniqueEmail("x") }],
    ["a path in another case", ["ROLE"], { role: Role.ADMIN }],
    ["a read-only path", ["create_time"], {}],
  ];

  it.each(forbidden)("is PERMISSION_DENIED for %s, and nothing changes", async (_name, paths, fields) => {
    const before = await rows();
    for (const c of [
      grpc.call(m.updateUser, { user: { id: self.user.id, ...fields }, updateMask: { paths } }, self.token),
      asSelf.users.updateUser({ user: { id: self.user.id, ...fields }, updateMask: { paths } }),
    ]) {
      await expectDenied(c);
    }
    expect(await rows()).toEqual(before);
    const me = await grpc.call(m.getUser, { userId: self.user.id }, self.token);
    expect([me.user?.role, me.user?.email]).toEqual([Role.USER, self.email]);
  });

  it("may change its display_name and labels (the positive control)", async () => {
    const res = await grpc.call(
      m.updateUser,
      {
        user: { id: self.user.id, displayName: "Renamed", labels: { team: "edge" } },
        updateMask: { paths: ["display_name", "labels"] },
      },
      self.token,
    );
    expect([res.user?.displayName, res.user?.labels.team, res.user?.role]).toEqual(["Renamed", "edge", Role.USER]);
  });

  it("may read itself", async () => {
    expect((await grpc.call(m.getUser, { userId: self.user.id }, self.token)).user?.id).toBe(self.user.id);
  });
});

describe("the admin", () => {
  it("may do what the user may not (the denials above are about the caller, not the call)", async () => {
    expect((await grpc.call(m.getUser, { userId: other.user.id }, admin)).user?.id).toBe(other.user.id);
    expect((await grpc.call(m.batchGetUsers, { userIds: [other.user.id, self.user.id] }, admin)).users).toHaveLength(2);
    const res = await grpc.call(
      m.updateUser,
      {
        user: { id: other.user.id, role: Role.USER, state: UserState.ACTIVE },
        updateMask: { paths: ["role", "state"] },
      },
      admin,
    );
    expect(res.user?.role).toBe(Role.USER);
  });
});
