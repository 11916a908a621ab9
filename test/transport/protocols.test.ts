/**
 * The same service over every protocol connect-node speaks (gRPC; Connect binary over HTTP/1.1 and
 * HTTP/2; Connect JSON; gRPC-web over HTTP/1.1 and HTTP/2): a user's whole lifecycle through the
 * implemented RPCs, and each error reason arriving with its status code, ErrorInfo (one domain for the
 * whole service) and, for INVALID_ARGUMENT, BadRequest field violations.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

const transports: TransportName[] = [
  "grpc",
  "connect-h1",
  "connect-h2",
  "connect-json-h1",
  "grpc-web-h1",
  "grpc-web-h2",
];

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/** Every ErrorInfo domain seen, across transports: the contract wants exactly one. */
const domains = new Set<string | undefined>();

describe.each(transports)("over %s", (name) => {
  let adminToken: string | undefined;
  let memberToken: string | undefined;
  let admin: Clients;
  let member: Clients;
  let anonymous: Clients;
  let memberId: string;
  let memberEmail: string;
  const memberPassword = `pw-${randomUUID()}`;

  beforeAll(async () => {
    admin = clients(server.url, name, () => adminToken);
    member = clients(server.url, name, () => memberToken);
    anonymous = clients(server.url, name);
    const res = await anonymous.auth.login(ADMIN);
    adminToken = res.tokens?.accessToken;
    memberEmail = uniqueEmail(`member-${name}`);
    const created = await admin.users.createUser({
      user: { email: memberEmail, displayName: `Member ${name}` },
      password: memberPassword,
    });
    memberId = created.user?.id ?? "";
    memberToken = (await anonymous.auth.login({ email: memberEmail, password: memberPassword })).tokens?.accessToken;
  });

  it("logs in and reads the caller with GetCurrentUser", async () => {
    const me = await admin.auth.getCurrentUser({});
    expect(me.user?.email).toBe(ADMIN.email);
    expect(me.user?.role).toBe(Role.ADMIN);
    const self = await member.auth.getCurrentUser({});
    expect(self.user?.id).toBe(memberId);
  });

  it("creates (idempotently), reads, batch-reads, updates, deletes and undeletes a user", async () => {
    const email = uniqueEmail(`life-${name}`);
    const requestId = randomUUID();
    const created = await admin.users.createUser({
      user: { email, displayName: "Life", labels: { via: name.replaceAll("-", "_") } },
      requestId,
    });
    const retried = await admin.users.createUser({ user: { email, displayName: "Life" }, requestId });
    expect(retried.user?.id).toBe(created.user?.id);
    const id = created.user?.id ?? "";
    const got = await admin.users.getUser({ userId: id });
    expect(got.user).toEqual(created.user);
    const batch = await admin.users.batchGetUsers({ userIds: [memberId, id] });
    expect(batch.users.map((u) => u.id)).toEqual([memberId, id]);
    const updated = await admin.users.updateUser({
      user: { id, displayName: "Life 2", etag: got.user?.etag },
      updateMask: { paths: ["display_name"] },
    });
    expect(updated.user?.displayName).toBe("Life 2");
    const deleted = await admin.users.deleteUser({ userId: id, etag: updated.user?.etag });
    expect(deleted.user?.state).toBe(UserState.DELETED);
    const restored = await admin.users.undeleteUser({ userId: id });
    expect(restored.user?.state).toBe(UserState.ACTIVE);
    expect(await query(server.databaseUrl, "select state from users where lower(email) = lower($1)", [email])).toEqual([
      { state: "active" },
    ]);
  });

  it("lets a user read itself and change its own display_name and labels", async () => {
    const got = await member.users.getUser({ userId: memberId });
    expect(got.user?.id).toBe(memberId);
    const res = await member.users.updateUser({
      user: { id: memberId, displayName: `Renamed over ${name}`, labels: { k: "v" } },
      updateMask: { paths: ["display_name", "labels"] },
    });
    expect(res.user?.displayName).toBe(`Renamed over ${name}`);
  });

  it("carries INVALID_ARGUMENT with BadRequest field violations", async () => {
    const f = await failure(admin.users.getUser({ userId: "not-a-uuid" }));
    expect([f.code, f.reason, f.violations]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT", ["user_id"]]);
    const g = await failure(admin.users.createUser({ user: { email: "bad", displayName: "d".repeat(101) } }));
    expect(g.code).toBe(Code.InvalidArgument);
    expect(g.violations).toEqual(expect.arrayContaining(["user.email", "user.display_name"]));
    domains.add(f.domain);
    domains.add(g.domain);
  });

  it("carries every other applicable reason with its status code", async () => {
    const existing = (await admin.auth.getCurrentUser({})).user;
    const cases = [
      { call: () => anonymous.auth.getCurrentUser({}), code: Code.Unauthenticated, reason: "UNAUTHENTICATED" },
      {
        call: () => anonymous.auth.login({ email: memberEmail, password: "wrong-password" }),
        code: Code.Unauthenticated,
        reason: "INVALID_CREDENTIALS",
      },
      {
        call: () => member.users.getUser({ userId: existing?.id }),
        code: Code.PermissionDenied,
        reason: "PERMISSION_DENIED",
      },
      { call: () => admin.users.getUser({ userId: randomUUID() }), code: Code.NotFound, reason: "USER_NOT_FOUND" },
      {
        call: () => admin.users.createUser({ user: { email: ADMIN.email.toUpperCase(), displayName: "Dup" } }),
        code: Code.AlreadyExists,
        reason: "EMAIL_TAKEN",
      },
      {
        call: () =>
          admin.users.updateUser({
            user: { id: memberId, displayName: "X", etag: 'W/"0"' },
            updateMask: { paths: ["display_name"] },
          }),
        code: Code.Aborted,
        reason: "ETAG_MISMATCH",
      },
    ];
    for (const c of cases) {
      const f = await failure(c.call());
      expect([f.code, f.reason], c.reason).toEqual([c.code, c.reason]);
      expect(f.message).not.toBe("");
      expect(f.violations).toEqual([]);
      domains.add(f.domain);
    }
  });
});

describe("ErrorInfo", () => {
  it("names one domain for the whole service, on every protocol", () => {
    expect(domains.size).toBe(1);
    expect([...domains][0]).toMatch(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/);
  });
});
