/**
 * Attacks on access tokens, over the wire against the real server (HS256, the default). Each forged,
 * tampered, expired, not-yet-valid or revoked token, and each token sent the wrong way, must be answered
 * UNAUTHENTICATED with reason UNAUTHENTICATED and a message that says nothing more specific than "invalid or
 * revoked token": an attacker must not learn which check failed or whether a user exists. Revocation is
 * also checked across replicas (a second server on the same database): a suspended user's token dies there
 * within one second.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { signToken } from "../helpers/keys.ts";
import { ADMIN, JWT_SECRET, startTestServer, type TestServer } from "../helpers/server.ts";
import { forge, payloadOf, unsigned, validClaims, withPayload } from "../helpers/tokens.ts";
import { expectInvalidToken, INVALID_TOKEN } from "./expect.ts";

const { getCurrentUser } = AuthService.method;
const { getUser, updateUser, deleteUser } = UserService.method;

let server: TestServer;
let replica: TestServer;
let grpc: GrpcJs;
let admin: string;
let adminId: string;
let member: Member;

beforeAll(async () => {
  server = await startTestServer();
  // A second replica on the same database: revocation must reach it through the change log.
  replica = await startTestServer({ DATABASE_URL: server.databaseUrl });
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  adminId = String(payloadOf(admin).sub);
  member = await createMember(server.url, admin, { prefix: "jwt" });
});
afterAll(async () => {
  grpc?.close();
  await replica?.close();
  await server?.close();
});

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** Every forged or broken token, built lazily (they need the member's id and real token). */
const attacks: { name: string; token: () => string }[] = [
  { name: "alg none, unsigned, claiming admin", token: () => unsigned(validClaims(adminId, "ROLE_ADMIN")) },
  { name: "alg none for the member itself", token: () => unsigned(validClaims(member.user.id)) },
  {
    name: "alg None (capitalised)",
    token: () => `${b64({ alg: "None", typ: "at+jwt" })}.${b64(validClaims(member.user.id))}.`,
  },
  {
    name: "alg none with the real signature kept",
    token: () => `${b64({ alg: "none" })}.${member.token.split(".")[1]}.${member.token.split(".")[2]}`,
  },
  {
    name: "the real header and payload with the signature stripped",
    token: () => `${member.token.split(".").slice(0, 2).join(".")}.`,
  },
  { name: "a wrong iss", token: () => forge({ ...validClaims(member.user.id), iss: "https://evil.example" }) },
  { name: "a wrong aud", token: () => forge({ ...validClaims(member.user.id), aud: "another-service" }) },
  { name: "an aud list without ours", token: () => forge({ ...validClaims(member.user.id), aud: ["a", "b"] }) },
  { name: "no exp", token: () => forge({ ...validClaims(member.user.id), exp: undefined }) },
  {
    name: "exp as a string",
    token: () => signToken({ ...validClaims(member.user.id), exp: String(now() + 3600) }, "HS256", JWT_SECRET),
  },
  {
    name: "an expired exp",
    token: () => forge({ ...validClaims(member.user.id), iat: now() - 7200, exp: now() - 60 }),
  },
  { name: "nbf in the future", token: () => forge({ ...validClaims(member.user.id), nbf: now() + 3600 }) },
  {
    name: "iat in the future",
    token: () => forge({ ...validClaims(member.user.id), iat: now() + 3600, exp: now() + 7200 }),
  },
  { name: "no iat", token: () => forge({ ...validClaims(member.user.id), iat: undefined }) },
  {
    name: "a payload changed to ROLE_ADMIN, signature kept",
    token: () => withPayload(member.token, { ...payloadOf(member.token), role: "ROLE_ADMIN" }),
  },
  {
    name: "a payload changed to another subject, signature kept",
    token: () => withPayload(member.token, { ...payloadOf(member.token), sub: adminId }),
  },
  {
    name: "a payload with exp extended, signature kept",
    token: () => withPayload(member.token, { ...payloadOf(member.token), exp: now() + 86400 * 365 }),
  },
  {
    name: "one flipped signature byte",
    token: () => member.token.slice(0, -3) + (member.token.at(-3) === "A" ? "B" : "A") + member.token.slice(-2),
  },
  {
    name: "a signature by another secret",
    token: () => forge(validClaims(adminId, "ROLE_ADMIN"), { secret: `${JWT_SECRET}-not` }),
  },
  { name: "HS512 with the right secret", token: () => forge(validClaims(member.user.id), { algorithm: "HS512" }) },
  {
    name: "a kid header the service never issued",
    token: () =>
      forge(validClaims(member.user.id)).replace(/^[^.]+/, b64({ alg: "HS256", typ: "at+jwt", kid: "../../dev/null" })),
  },
  { name: "a user id that never existed", token: () => forge(validClaims(randomUUID())) },
  { name: "a user id that never existed, as admin", token: () => forge(validClaims(randomUUID(), "ROLE_ADMIN")) },
  { name: "a subject that is not a UUID", token: () => forge(validClaims("' or 1=1 --")) },
  { name: "garbage", token: () => "garbage" },
  { name: "three empty parts", token: () => ".." },
  {
    name: "base64 of non-JSON parts",
    token: () => `${Buffer.from("{not json").toString("base64url")}.${Buffer.from("[1,2").toString("base64url")}.AAAA`,
  },
  { name: "a header-only token", token: () => member.token.split(".")[0] },
  { name: "a real token with trailing junk", token: () => `${member.token}x` },
  { name: "8 KB of junk", token: () => "A".repeat(8192) },
];

describe("a forged or broken access token", () => {
  it.each(attacks)("is refused over gRPC (grpc-js): $name", async ({ token }) => {
    const t = token();
    await expectInvalidToken(grpc.call(getCurrentUser, {}, t), t);
    await expectInvalidToken(grpc.call(getUser, { userId: member.user.id }, t), t);
  });

  it.each(attacks)("is refused over Connect JSON: $name", async ({ token }) => {
    const t = token();
    await expectInvalidToken(clients(server.url, "connect-json-h1", () => t).auth.getCurrentUser({}), t);
  });

  it("changes nothing: an UpdateUser with a tampered admin token leaves the row alone", async () => {
    const tampered = withPayload(member.token, { ...payloadOf(member.token), role: "ROLE_ADMIN" });
    await expectInvalidToken(
      grpc.call(
        updateUser,
        { user: { id: member.user.id, displayName: "pwned" }, updateMask: { paths: ["display_name"] } },
        tampered,
      ),
    );
    expect((await grpc.call(getUser, { userId: member.user.id }, admin)).user?.displayName).not.toBe("pwned");
  });

  it("is refused while the same claims, correctly signed, are accepted (the forgeries differ only in what they test)", async () => {
    expect((await grpc.call(getCurrentUser, {}, forge(validClaims(member.user.id)))).user?.id).toBe(member.user.id);
    expect((await grpc.call(getCurrentUser, {}, member.token)).user?.id).toBe(member.user.id);
  });
});

describe("a token sent the wrong way", () => {
  const missing = /^(invalid or revoked token|missing bearer token in the authorization header)$/;
  const cases: { name: string; headers: () => Record<string, string> }[] = [
    { name: "in x-authorization", headers: () => ({ "x-authorization": `Bearer ${member.token}` }) },
    {
      name: "as Authorization: Basic with the admin's credentials",
      headers: () => ({ authorization: `Basic ${Buffer.from(`${ADMIN.email}:${ADMIN.password}`).toString("base64")}` }),
    },
    { name: "as Authorization: Basic with the token", headers: () => ({ authorization: `Basic ${member.token}` }) },
    { name: "without a scheme", headers: () => ({ authorization: member.token }) },
    { name: "as Authorization: Token", headers: () => ({ authorization: `Token ${member.token}` }) },
    { name: "as a bare Bearer", headers: () => ({ authorization: "Bearer" }) },
    {
      name: "as two tokens in one header",
      headers: () => ({ authorization: `Bearer ${member.token} ${member.token}` }),
    },
    { name: "in a cookie", headers: () => ({ cookie: `access_token=${member.token}` }) },
  ];

  it.each(cases)("is UNAUTHENTICATED: $name", async ({ headers }) => {
    for (const kind of ["grpc", "connect-h1"] as const) {
      const f = await failure(clients(server.url, kind).auth.getCurrentUser({}, { headers: headers() }));
      expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: "Unauthenticated", reason: "UNAUTHENTICATED" });
      expect(f.message).toMatch(missing);
      expect(f.message).not.toContain(member.token);
    }
  });
});

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Calls `probe` until it fails; returns how long after `since` the first failure came (ms). */
async function timeUntilRefused(probe: () => Promise<unknown>, since: number, limitMs = 5000): Promise<number> {
  for (;;) {
    try {
      await probe();
    } catch {
      return performance.now() - since;
    }
    if (performance.now() - since > limitMs) throw new Error(`still accepted after ${limitMs} ms`);
    await sleep(5);
  }
}

describe("the token of a user changed after it was issued", () => {
  it("of a suspended user dies within 1 s on this replica and on another (suspended by another client)", async () => {
    const m = await createMember(server.url, admin, { prefix: "suspend" });
    // The user's client talks Connect to the replica; its cache holds the user as active.
    const victim = clients(replica.url, "connect-h2", () => m.token);
    expect((await victim.auth.getCurrentUser({})).user?.id).toBe(m.user.id);
    const started = performance.now();
    // The admin suspends it with another client (grpc-js) on the other server.
    await grpc.call(
      updateUser,
      { user: { id: m.user.id, state: UserState.SUSPENDED }, updateMask: { paths: ["state"] } },
      admin,
    );
    // Probed with GetUser, which only the auth check decides (see the deleted-user case below).
    const onReplica = await timeUntilRefused(() => victim.users.getUser({ userId: m.user.id }), started);
    expect(onReplica).toBeLessThan(1000);
    await expectInvalidToken(victim.auth.getCurrentUser({}));
    await expectInvalidToken(victim.users.getUser({ userId: m.user.id }));
    await expectInvalidToken(grpc.call(getCurrentUser, {}, m.token));
  });

  it("of a deleted user is refused on both replicas", async () => {
    const m = await createMember(server.url, admin, { prefix: "deleted" });
    const victim = clients(replica.url, "grpc", () => m.token);
    await victim.auth.getCurrentUser({});
    const started = performance.now();
    await grpc.call(deleteUser, { userId: m.user.id }, admin);
    // GetUser is decided by the auth check alone (the replica's in-memory status, fed by the change feed).
    // GetCurrentUser also reads the row, so it can refuse a moment before the replica's status catches up:
    // probing it first would time the database read, not the revocation.
    expect(await timeUntilRefused(() => victim.users.getUser({ userId: m.user.id }), started)).toBeLessThan(1000);
    await expectInvalidToken(victim.users.getUser({ userId: m.user.id }), m.token);
    await expectInvalidToken(victim.auth.getCurrentUser({}), m.token);
    await expectInvalidToken(grpc.call(getCurrentUser, {}, m.token), m.token);
  });

  it("of a suspended user stays dead after the user is reactivated (revocation is by issue time)", async () => {
    const m = await createMember(server.url, admin, { prefix: "reactivated" });
    const set = (state: UserState) =>
      grpc.call(updateUser, { user: { id: m.user.id, state }, updateMask: { paths: ["state"] } }, admin);
    await set(UserState.SUSPENDED);
    await set(UserState.ACTIVE);
    await expectInvalidToken(grpc.call(getCurrentUser, {}, m.token));
    await sleep(1000);
    await expectInvalidToken(clients(replica.url, "grpc", () => m.token).auth.getCurrentUser({}));
  });

  it("of a demoted admin no longer grants admin, at once", async () => {
    const { user } = await grpc.call(
      UserService.method.createUser,
      {
        user: { email: `admin2-${randomUUID().slice(0, 8)}@example.com`, displayName: "Admin Two", role: 2 },
        password: "admin-two-password",
      },
      admin,
    );
    const { tokens } = await grpc.call(AuthService.method.login, {
      email: user?.email ?? "",
      password: "admin-two-password",
    });
    const second = tokens?.accessToken ?? "";
    await grpc.call(UserService.method.listUsers, {}, second).catch(() => undefined);
    await grpc.call(updateUser, { user: { id: user?.id, role: 1 }, updateMask: { paths: ["role"] } }, admin);
    const f = await failure(grpc.call(getUser, { userId: adminId }, second));
    expect(Code[f.code]).toBe("PermissionDenied");
  });
});

describe("the error of a refused token", () => {
  it("is the same whatever the reason, so it reveals nothing", async () => {
    const messages = new Set<string>();
    for (const { token } of attacks) {
      messages.add((await failure(grpc.call(getCurrentUser, {}, token()))).message);
    }
    expect([...messages]).toEqual([INVALID_TOKEN]);
  });
});
