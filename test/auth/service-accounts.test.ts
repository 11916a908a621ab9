/**
 * Service accounts over the wire: an admin creates one with CreateUser (`kind` USER_KIND_SERVICE, no
 * password); a password with it is INVALID_ARGUMENT and creates nothing; it cannot Login (INVALID_CREDENTIALS,
 * the answer of a wrong password); it authenticates with an API key, with its own role; a non-admin cannot
 * create one.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserKind } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { expectDenied } from "../security/expect.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const as = (token: string, transport: TransportName = "grpc") => clients(server.url, transport, () => token);

const usersWith = async (email: string) =>
  (await query<{ n: number }>(server.databaseUrl, "select count(*)::int as n from users where email = $1", [email]))[0]
    .n;

describe("service accounts", () => {
  for (const transport of ["grpc", "connect-h2", "grpc-web-h1"] as const) {
    it(`are created by an admin with kind USER_KIND_SERVICE over ${transport}`, async () => {
      const email = uniqueEmail("svc");
      const res = await as(admin, transport).users.createUser({
        user: { email, displayName: "Billing backend", kind: UserKind.SERVICE },
      });
      expect(res.user).toMatchObject({ email, kind: UserKind.SERVICE, role: Role.USER });
      const got = await as(admin, transport).users.getUser({ userId: res.user?.id ?? "" });
      expect(got.user?.kind).toBe(UserKind.SERVICE);
    });
  }

  it("default to USER_KIND_HUMAN when kind is unset", async () => {
    const res = await as(admin).users.createUser({ user: { email: uniqueEmail("human"), displayName: "Person" } });
    expect(res.user?.kind).toBe(UserKind.HUMAN);
  });

  it("cannot have a password: INVALID_ARGUMENT on `password`, nothing created", async () => {
    const email = uniqueEmail("svc-pw");
    const f = await failure(
      as(admin).users.createUser({
        user: { email, displayName: "With password", kind: UserKind.SERVICE },
        password: `pw-${randomUUID()}`,
      }),
    );
    expect({ code: Code[f.code], reason: f.reason, violations: f.violations }).toEqual({
      code: "InvalidArgument",
      reason: "INVALID_ARGUMENT",
      violations: ["password"],
    });
    expect(await usersWith(email)).toBe(0);
  });

  it("cannot Login: INVALID_CREDENTIALS, as for a wrong password", async () => {
    const email = uniqueEmail("svc-login");
    await as(admin).users.createUser({ user: { email, displayName: "No login", kind: UserKind.SERVICE } });
    for (const password of ["anything-at-all-123", "x"]) {
      const f = await failure(clients(server.url, "grpc").auth.login({ email, password }));
      expect({ code: Code[f.code], reason: f.reason }).toEqual({
        code: "Unauthenticated",
        reason: "INVALID_CREDENTIALS",
      });
    }
  });

  it("authenticate with an API key, with their own role", async () => {
    const svc = await as(admin).users.createUser({
      user: { email: uniqueEmail("svc-admin"), displayName: "Provisioner", kind: UserKind.SERVICE, role: Role.ADMIN },
    });
    const { secret } = await as(admin).users.createApiKey({ userId: svc.user?.id ?? "", displayName: "provisioner" });
    const me = await as(secret, "connect-h1").auth.getCurrentUser({});
    expect(me.user).toMatchObject({ id: svc.user?.id, kind: UserKind.SERVICE, role: Role.ADMIN });
    // An admin service account can do admin work, such as creating another service account.
    const other = await as(secret).users.createUser({
      user: { email: uniqueEmail("svc-child"), displayName: "Child", kind: UserKind.SERVICE },
    });
    expect(other.user?.kind).toBe(UserKind.SERVICE);
  });

  it("are not created by a non-admin (PERMISSION_DENIED), nothing created", async () => {
    const m = await createMember(server.url, admin, { prefix: "svc-nosy" });
    const email = uniqueEmail("svc-denied");
    await expectDenied(as(m.token).users.createUser({ user: { email, displayName: "Nope", kind: UserKind.SERVICE } }));
    expect(await usersWith(email)).toBe(0);
  });
});
