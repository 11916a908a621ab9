/**
 * Login and GetCurrentUser over @grpc/grpc-js: the tokens issued (claims, expiry, refresh token stored
 * only as a hash), case-insensitive email, INVALID_CREDENTIALS that reads the same for an unknown email and
 * a wrong password, validation, and that a failed login starts no session.
 */
import { createHash } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, createPlainUser, type Member } from "../helpers/accounts.ts";
import { failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { payloadOf } from "../helpers/tokens.ts";

const { login, getCurrentUser } = AuthService.method;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let member: Member;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  member = await createMember(server.url, admin, { prefix: "login" });
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

async function sessionCount(): Promise<number> {
  return (await query<{ n: number }>(server.databaseUrl, "select count(*)::int as n from refresh_tokens"))[0].n;
}

describe("Login", () => {
  it("returns the user and Bearer tokens: a JWT with iss, aud, sub, role, iat, exp (15 min), jti", async () => {
    const started = Date.now();
    const res = await grpc.call(login, ADMIN);
    expect(res.user?.email).toBe(ADMIN.email);
    expect(res.user?.role).toBe(Role.ADMIN);
    const t = res.tokens;
    expect(t?.tokenType).toBe("Bearer");
    const claims = payloadOf(t?.accessToken ?? "");
    expect(claims).toMatchObject({ iss: "user-service", aud: "user-service", sub: res.user?.id, role: "ROLE_ADMIN" });
    expect(typeof claims.jti).toBe("string");
    const exp = Number(claims.exp) * 1000;
    expect(exp - Number(claims.iat) * 1000).toBe(15 * 60 * 1000);
    expect(Math.abs(exp - started - 15 * 60 * 1000)).toBeLessThan(10_000);
    expect(t?.accessTokenExpireTime && timestampDate(t.accessTokenExpireTime).getTime()).toBe(exp);
    const header = JSON.parse(Buffer.from((t?.accessToken ?? "").split(".")[0], "base64url").toString()) as {
      alg: string;
    };
    expect(header.alg).toBe("HS256");
  });

  it("stores the refresh token only as its SHA-256 hash", async () => {
    const res = await grpc.call(login, ADMIN);
    const refresh = res.tokens?.refreshToken ?? "";
    expect(refresh.length).toBeGreaterThanOrEqual(32);
    const hash = createHash("sha256").update(refresh).digest();
    const rows = await query<{ token_hash: Buffer }>(
      server.databaseUrl,
      "select token_hash from refresh_tokens where token_hash = $1",
      [hash],
    );
    expect(rows).toHaveLength(1);
    const dump = JSON.stringify(await query(server.databaseUrl, "select * from refresh_tokens"));
    expect(dump).not.toContain(refresh);
  });

  it("issues a different token pair on every login", async () => {
    const [a, b] = await Promise.all([grpc.call(login, ADMIN), grpc.call(login, ADMIN)]);
    expect(a.tokens?.accessToken).not.toBe(b.tokens?.accessToken);
    expect(a.tokens?.refreshToken).not.toBe(b.tokens?.refreshToken);
  });

  it("matches the email case-insensitively", async () => {
    const res = await grpc.call(login, { email: member.email.toUpperCase(), password: member.password });
    expect(res.user?.id).toBe(member.user.id);
    expect(res.user?.role).toBe(Role.USER);
    expect(payloadOf(res.tokens?.accessToken ?? "").role).toBe("ROLE_USER");
  });

  it("gives the same answer for an unknown email, a wrong password and a user without password, and starts no session", async () => {
    const passwordless = await createPlainUser(server.url, admin, "nopw");
    const before = await sessionCount();
    const wrongPassword = await failure(grpc.call(login, { email: member.email, password: `${member.password}x` }));
    const unknownEmail = await failure(grpc.call(login, { email: "nobody@example.com", password: member.password }));
    const noPassword = await failure(grpc.call(login, { email: passwordless.email, password: "whatever-password" }));
    for (const f of [wrongPassword, unknownEmail, noPassword]) {
      expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "INVALID_CREDENTIALS"]);
      expect(f.message).toBe(wrongPassword.message);
      expect(f.violations).toEqual([]);
    }
    expect(await sessionCount()).toBe(before);
  });

  it("does not let a suspended user log in, and starts no session", async () => {
    const m = await createMember(server.url, admin, { prefix: "suspended-login" });
    await grpc.call(
      UserService.method.updateUser,
      { user: { id: m.user.id, state: UserState.SUSPENDED }, updateMask: { paths: ["state"] } },
      admin,
    );
    const before = await sessionCount();
    const f = await failure(grpc.call(login, { email: m.email, password: m.password }));
    expect(f.code).not.toBe(Code.Internal);
    expect(await sessionCount()).toBe(before);
  });

  it.each([
    { name: "an empty email", req: { email: "", password: "password-123" }, field: "email" },
    { name: "an empty password", req: { email: "a@example.com", password: "" }, field: "password" },
    { name: "a password of 129 chars", req: { email: "a@example.com", password: "p".repeat(129) }, field: "password" },
    {
      name: "an email of 255 chars",
      req: { email: `${"e".repeat(243)}@example.com`, password: "password-123" },
      field: "email",
    },
  ])("rejects $name: INVALID_ARGUMENT on $field", async ({ req, field }) => {
    const f = await failure(grpc.call(login, req));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual([field]);
  });
});

describe("GetCurrentUser", () => {
  it("returns the caller, admin or not", async () => {
    const me = await grpc.call(getCurrentUser, {}, member.token);
    expect(me.user?.id).toBe(member.user.id);
    expect(me.user?.email).toBe(member.email);
    const root = await grpc.call(getCurrentUser, {}, admin);
    expect(root.user?.email).toBe(ADMIN.email);
    expect(root.user?.role).toBe(Role.ADMIN);
  });

  it("needs a token: UNAUTHENTICATED", async () => {
    const f = await failure(grpc.call(getCurrentUser, {}));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });

  it("reflects updates made since login", async () => {
    await grpc.call(
      UserService.method.updateUser,
      { user: { id: member.user.id, displayName: "Updated Name" }, updateMask: { paths: ["display_name"] } },
      member.token,
    );
    const me = await grpc.call(getCurrentUser, {}, member.token);
    expect(me.user?.displayName).toBe("Updated Name");
  });
});
