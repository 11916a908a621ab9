/**
 * The admin's password flows over the wire (gRPC and Connect JSON): SetPassword (the new password works, the
 * old one and every earlier refresh and access token do not; change_required restricts the user's tokens,
 * refreshed ones included, to GetCurrentUser, ChangePassword and Logout until ChangePassword lifts it; Login
 * says so), CreatePasswordResetCode and ResetPassword (the code works once, the reset ends every session and
 * the login lockout, a weak password spends nothing). Every contract error with its code and reason, and a
 * ROLE_USER refused each admin method. The rules every code follows are in one-time-codes.test.ts.
 */
import { randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserKind, UserState } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { expectDenied, expectInvalidToken } from "../security/expect.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const as = (name: TransportName, token?: string): Clients => clients(server.url, name, () => token);
const newMember = (prefix: string) => createMember(server.url, admin, { prefix });
const newPassword = () => `new-pw-${randomUUID()}`;

async function expectFailure(call: Promise<unknown>, code: Code, reason: string): Promise<void> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: Code[code], reason });
}

async function loginTokens(email: string, password: string) {
  const res = await as("grpc").auth.login({ email, password });
  if (!res.tokens) throw new Error("no tokens");
  return { ...res.tokens, passwordChangeRequired: res.passwordChangeRequired };
}

async function resetCode(userId: string): Promise<string> {
  return (await as("grpc", admin).users.createPasswordResetCode({ userId })).code;
}

describe.each(["grpc", "connect-json-h1"] as const)("over %s", (transport) => {
  describe("SetPassword", () => {
    it("sets the password: the new one logs in, the old one and every earlier token stop working", async () => {
      const m = await newMember(`set-${transport}`);
      const before = await loginTokens(m.email, m.password);
      const password = newPassword();
      const res = await as(transport, admin).users.setPassword({ userId: m.user.id, password });
      expect(res.user?.id).toBe(m.user.id);
      expect(res.user?.passwordChangeRequired).toBe(false);
      expect(res.user?.etag).not.toBe(m.user.etag);
      await expectFailure(
        as(transport).auth.login({ email: m.email, password: m.password }),
        Code.Unauthenticated,
        "INVALID_CREDENTIALS",
      );
      const after = await loginTokens(m.email, password);
      expect(after.passwordChangeRequired).toBe(false);
      await expectInvalidToken(as(transport, m.token).auth.getCurrentUser({}));
      await expectInvalidToken(as(transport, before.accessToken).auth.getCurrentUser({}));
      await expectFailure(
        as(transport).auth.refreshToken({ refreshToken: before.refreshToken }),
        Code.Unauthenticated,
        "UNAUTHENTICATED",
      );
      expect((await as(transport, after.accessToken).auth.getCurrentUser({})).user?.id).toBe(m.user.id);
    });

    it("answers USER_NOT_FOUND for an unknown user and a deleted one", async () => {
      await expectFailure(
        as(transport, admin).users.setPassword({ userId: randomUUID(), password: newPassword() }),
        Code.NotFound,
        "USER_NOT_FOUND",
      );
      const m = await newMember("set-deleted");
      await as("grpc", admin).users.deleteUser({ userId: m.user.id });
      await expectFailure(
        as(transport, admin).users.setPassword({ userId: m.user.id, password: newPassword() }),
        Code.NotFound,
        "USER_NOT_FOUND",
      );
    });

    it("refuses a service account (INVALID_ARGUMENT on user_id), changing nothing", async () => {
      const svc = await as("grpc", admin).users.createUser({
        user: { email: uniqueEmail("svc"), displayName: "Robot", kind: UserKind.SERVICE },
      });
      const id = svc.user?.id ?? "";
      const f = await failure(as(transport, admin).users.setPassword({ userId: id, password: newPassword() }));
      expect([Code[f.code], f.reason, f.violations]).toEqual([
        Code[Code.InvalidArgument],
        "INVALID_ARGUMENT",
        ["user_id"],
      ]);
      const [row] = await query<{ password_hash: string | null }>(
        server.databaseUrl,
        "select password_hash from users where id = $1",
        [id],
      );
      expect(row.password_hash).toBeNull();
    });

    it.each([
      { name: "a common password", password: () => "password123", reason: "WEAK_PASSWORD", field: "password" },
      {
        name: "the user's own email",
        password: (m: Member) => m.email.toUpperCase(),
        reason: "WEAK_PASSWORD",
        field: "password",
      },
      { name: "7 characters", password: () => "abc1234", reason: "INVALID_ARGUMENT", field: "password" },
      { name: "129 characters", password: () => "p".repeat(129), reason: "INVALID_ARGUMENT", field: "password" },
    ])("refuses $name ($reason), changing nothing", async ({ password, reason, field }) => {
      const m = await newMember("set-weak");
      const f = await failure(as(transport, admin).users.setPassword({ userId: m.user.id, password: password(m) }));
      expect([Code[f.code], f.reason, f.violations]).toEqual([Code[Code.InvalidArgument], reason, [field]]);
      await loginTokens(m.email, m.password);
      expect((await as(transport, m.token).auth.getCurrentUser({})).user?.id).toBe(m.user.id);
    });

    it("refuses a user_id that is not a UUID (INVALID_ARGUMENT)", async () => {
      const f = await failure(as(transport, admin).users.setPassword({ userId: "nope", password: newPassword() }));
      expect([Code[f.code], f.reason, f.violations]).toEqual([
        Code[Code.InvalidArgument],
        "INVALID_ARGUMENT",
        ["user_id"],
      ]);
    });
  });

  describe("CreatePasswordResetCode and ResetPassword", () => {
    it("issues a code that expires in RESET_CODE_TTL (1h) and resets the password once", async () => {
      const m = await newMember(`reset-${transport}`);
      const before = await loginTokens(m.email, m.password);
      const started = Date.now();
      const res = await as(transport, admin).users.createPasswordResetCode({ userId: m.user.id });
      expect(res.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
      const expires = res.expireTime ? timestampDate(res.expireTime).getTime() : 0;
      expect(Math.abs(expires - started - 3_600_000)).toBeLessThan(10_000);
      const password = newPassword();
      expect(
        await as(transport).auth.resetPassword({ email: m.email, code: res.code, newPassword: password }),
      ).toBeDefined();
      // The old password, refresh token and access tokens are dead; the new password logs in.
      await expectFailure(
        as(transport).auth.login({ email: m.email, password: m.password }),
        Code.Unauthenticated,
        "INVALID_CREDENTIALS",
      );
      await expectFailure(
        as(transport).auth.refreshToken({ refreshToken: before.refreshToken }),
        Code.Unauthenticated,
        "UNAUTHENTICATED",
      );
      await expectInvalidToken(as(transport, before.accessToken).auth.getCurrentUser({}));
      await expectInvalidToken(as(transport, m.token).users.getUser({ userId: m.user.id }));
      const after = await loginTokens(m.email, password);
      expect(after.passwordChangeRequired).toBe(false);
      // Single use: the same code again, even with another password, is INVALID_CODE and changes nothing.
      await expectFailure(
        as(transport).auth.resetPassword({ email: m.email, code: res.code, newPassword: newPassword() }),
        Code.InvalidArgument,
        "INVALID_CODE",
      );
      await loginTokens(m.email, password);
    });

    it("takes the email in any case and the code as a person types it (lower case, no hyphen, spaces)", async () => {
      const m = await newMember("reset-typed");
      const code = await resetCode(m.user.id);
      const typed = ` ${code.toLowerCase().replace("-", "")} `;
      await as(transport).auth.resetPassword({
        email: m.email.toUpperCase(),
        code: typed,
        newPassword: "typed-password-1",
      });
      await loginTokens(m.email, "typed-password-1");
    });

    it("refuses a weak new password (WEAK_PASSWORD) without spending the code", async () => {
      const m = await newMember("reset-weak");
      const code = await resetCode(m.user.id);
      const f = await failure(as(transport).auth.resetPassword({ email: m.email, code, newPassword: "password123" }));
      expect([Code[f.code], f.reason, f.violations]).toEqual([
        Code[Code.InvalidArgument],
        "WEAK_PASSWORD",
        ["new_password"],
      ]);
      const own = await failure(as(transport).auth.resetPassword({ email: m.email, code, newPassword: m.email }));
      expect(own.reason).toBe("WEAK_PASSWORD");
      const [row] = await query<{ attempts: number; used_time: Date | null }>(
        server.databaseUrl,
        "select attempts, used_time from one_time_codes where user_id = $1",
        [m.user.id],
      );
      expect(row).toEqual({ attempts: 0, used_time: null });
      await as(transport).auth.resetPassword({ email: m.email, code, newPassword: "strong-enough-1" });
      await loginTokens(m.email, "strong-enough-1");
    });

    it.each([
      { name: "an empty email", req: { email: "", code: "ABCDE-FGHJK", newPassword: "long-enough-1" }, field: "email" },
      { name: "an empty code", req: { email: "a@example.com", code: "", newPassword: "long-enough-1" }, field: "code" },
      {
        name: "a code of 129 chars",
        req: { email: "a@example.com", code: "A".repeat(129), newPassword: "long-enough-1" },
        field: "code",
      },
      {
        name: "a short new password",
        req: { email: "a@example.com", code: "ABCDE-FGHJK", newPassword: "short" },
        field: "new_password",
      },
    ])("refuses $name (INVALID_ARGUMENT on $field)", async ({ req, field }) => {
      const f = await failure(as(transport).auth.resetPassword(req));
      expect([Code[f.code], f.reason, f.violations]).toEqual([Code[Code.InvalidArgument], "INVALID_ARGUMENT", [field]]);
    });

    it("answers USER_NOT_FOUND for an unknown or deleted user, INVALID_ARGUMENT for a service account", async () => {
      await expectFailure(
        as(transport, admin).users.createPasswordResetCode({ userId: randomUUID() }),
        Code.NotFound,
        "USER_NOT_FOUND",
      );
      const m = await newMember("reset-code-deleted");
      await as("grpc", admin).users.deleteUser({ userId: m.user.id });
      await expectFailure(
        as(transport, admin).users.createPasswordResetCode({ userId: m.user.id }),
        Code.NotFound,
        "USER_NOT_FOUND",
      );
      const svc = await as("grpc", admin).users.createUser({
        user: { email: uniqueEmail("svc-reset"), displayName: "Robot", kind: UserKind.SERVICE },
      });
      const f = await failure(as(transport, admin).users.createPasswordResetCode({ userId: svc.user?.id ?? "" }));
      expect([Code[f.code], f.reason, f.violations]).toEqual([
        Code[Code.InvalidArgument],
        "INVALID_ARGUMENT",
        ["user_id"],
      ]);
      const rows = await query(server.databaseUrl, "select 1 from one_time_codes where user_id = any($1)", [
        [m.user.id, svc.user?.id],
      ]);
      expect(rows).toEqual([]);
    });
  });
});

describe("password_change_required (SetPassword with change_required)", () => {
  it("restricts the user's tokens to GetCurrentUser, ChangePassword and Logout until ChangePassword lifts it", async () => {
    const m = await newMember("must-change");
    const temporary = newPassword();
    const set = await as("grpc", admin).users.setPassword({
      userId: m.user.id,
      password: temporary,
      changeRequired: true,
    });
    expect(set.user?.passwordChangeRequired).toBe(true);
    const first = await loginTokens(m.email, temporary);
    expect(first.passwordChangeRequired).toBe(true);

    for (const transport of ["grpc", "connect-json-h1", "grpc-web-h1"] as const) {
      const c = as(transport, first.accessToken);
      const me = await c.auth.getCurrentUser({});
      expect(me.user?.passwordChangeRequired).toBe(true);
      for (const call of [
        c.users.getUser({ userId: m.user.id }),
        c.users.updateUser({
          user: { id: m.user.id, displayName: "Changed" },
          updateMask: { paths: ["display_name"] },
        }),
        c.users.listUsers({}),
      ]) {
        await expectFailure(call, Code.PermissionDenied, "PASSWORD_CHANGE_REQUIRED");
      }
    }
    const [row] = await query<{ display_name: string }>(
      server.databaseUrl,
      "select display_name from users where id = $1",
      [m.user.id],
    );
    expect(row.display_name).toBe(m.user.displayName);

    // A refreshed token is as restricted as the one it replaced.
    const refreshed = await as("grpc").auth.refreshToken({ refreshToken: first.refreshToken });
    const r = as("grpc", refreshed.tokens?.accessToken);
    await expectFailure(r.users.getUser({ userId: m.user.id }), Code.PermissionDenied, "PASSWORD_CHANGE_REQUIRED");
    expect((await r.auth.getCurrentUser({})).user?.id).toBe(m.user.id);

    // Logout is allowed (it takes a refresh token); a second session then changes the password.
    const second = await loginTokens(m.email, temporary);
    await as("grpc").auth.logout({ refreshToken: refreshed.tokens?.refreshToken ?? "" });
    const chosen = newPassword();
    const changed = await as("connect-json-h1", second.accessToken).auth.changePassword({
      currentPassword: temporary,
      newPassword: chosen,
    });
    const c = as("grpc", changed.tokens?.accessToken);
    const got = await c.users.getUser({ userId: m.user.id });
    expect(got.user?.passwordChangeRequired).toBe(false);
    const after = await loginTokens(m.email, chosen);
    expect(after.passwordChangeRequired).toBe(false);
    expect((await as("grpc", after.accessToken).users.getUser({ userId: m.user.id })).user?.id).toBe(m.user.id);
  });

  it("holds for an admin too, streams included", async () => {
    const email = uniqueEmail("second-admin");
    const temporary = newPassword();
    const created = await as("grpc", admin).users.createUser({
      user: { email, displayName: "Second Admin", role: Role.ADMIN },
      password: newPassword(),
    });
    await as("grpc", admin).users.setPassword({
      userId: created.user?.id ?? "",
      password: temporary,
      changeRequired: true,
    });
    const t = await loginTokens(email, temporary);
    expect(t.passwordChangeRequired).toBe(true);
    const c = as("grpc", t.accessToken);
    await expectFailure(c.users.listUsers({}), Code.PermissionDenied, "PASSWORD_CHANGE_REQUIRED");
    await expectFailure(
      c.users.createUser({ user: { email: uniqueEmail("by-restricted"), displayName: "X" } }),
      Code.PermissionDenied,
      "PASSWORD_CHANGE_REQUIRED",
    );
    await expectFailure(
      c.users.setPassword({ userId: created.user?.id ?? "", password: newPassword() }),
      Code.PermissionDenied,
      "PASSWORD_CHANGE_REQUIRED",
    );
    const drain = async () => {
      for await (const _ of as("connect-h1", t.accessToken).users.streamUsers({})) {
      }
    };
    await expectFailure(drain(), Code.PermissionDenied, "PASSWORD_CHANGE_REQUIRED");
  });

  it("is lifted by a SetPassword without change_required, and by a ResetPassword", async () => {
    const m = await newMember("lifted");
    await as("grpc", admin).users.setPassword({ userId: m.user.id, password: newPassword(), changeRequired: true });
    const plain = newPassword();
    const res = await as("grpc", admin).users.setPassword({ userId: m.user.id, password: plain });
    expect(res.user?.passwordChangeRequired).toBe(false);
    expect((await loginTokens(m.email, plain)).passwordChangeRequired).toBe(false);

    await as("grpc", admin).users.setPassword({ userId: m.user.id, password: newPassword(), changeRequired: true });
    const reset = newPassword();
    await as("grpc").auth.resetPassword({ email: m.email, code: await resetCode(m.user.id), newPassword: reset });
    const t = await loginTokens(m.email, reset);
    expect(t.passwordChangeRequired).toBe(false);
    expect((await as("grpc", t.accessToken).users.getUser({ userId: m.user.id })).user?.passwordChangeRequired).toBe(
      false,
    );
  });
});

describe("ResetPassword and the login lockout", () => {
  it("ends the lockout of the address, so the new password logs in at once", async () => {
    const m = await newMember("locked");
    for (let i = 0; i < 5; i++) {
      await expectFailure(
        as("grpc").auth.login({ email: m.email, password: "wrong-password" }),
        Code.Unauthenticated,
        "INVALID_CREDENTIALS",
      );
    }
    await expectFailure(
      as("grpc").auth.login({ email: m.email, password: m.password }),
      Code.ResourceExhausted,
      "ACCOUNT_LOCKED",
    );
    const password = newPassword();
    await as("grpc").auth.resetPassword({ email: m.email, code: await resetCode(m.user.id), newPassword: password });
    const rows = await query(server.databaseUrl, "select 1 from login_failures where email_key = $1", [
      m.email.toLowerCase(),
    ]);
    expect(rows).toEqual([]);
    await loginTokens(m.email, password);
  });
});

describe("a ROLE_USER", () => {
  it.each([
    [
      "SetPassword of another user",
      (c: Clients, other: Member) => c.users.setPassword({ userId: other.user.id, password: newPassword() }),
    ],
    [
      "SetPassword of itself",
      (c: Clients, _: Member, self: Member) => c.users.setPassword({ userId: self.user.id, password: newPassword() }),
    ],
    [
      "CreatePasswordResetCode",
      (c: Clients, other: Member) => c.users.createPasswordResetCode({ userId: other.user.id }),
    ],
    [
      "CreatePasswordResetCode of itself",
      (c: Clients, _: Member, self: Member) => c.users.createPasswordResetCode({ userId: self.user.id }),
    ],
    [
      "CreateEmailVerificationCode",
      (c: Clients, other: Member) => c.users.createEmailVerificationCode({ userId: other.user.id }),
    ],
    [
      "CreateEmailVerificationCode of itself",
      (c: Clients, _: Member, self: Member) => c.users.createEmailVerificationCode({ userId: self.user.id }),
    ],
  ])("is PERMISSION_DENIED: %s, and nothing changes", async (_name, call) => {
    const [self, other] = await Promise.all([newMember("denied-self"), newMember("denied-other")]);
    const snapshot = () =>
      query(server.databaseUrl, "select id, version, password_hash from users where id = any($1) order by id", [
        [self.user.id, other.user.id],
      ]);
    const before = await snapshot();
    for (const transport of ["grpc", "connect-json-h1"] as const) {
      await expectDenied(call(as(transport, self.token), other, self));
    }
    expect(await snapshot()).toEqual(before);
    expect(
      await query(server.databaseUrl, "select 1 from one_time_codes where user_id = any($1)", [
        [self.user.id, other.user.id],
      ]),
    ).toEqual([]);
  });

  it("needs a token at all: UNAUTHENTICATED", async () => {
    await expectFailure(
      as("grpc").users.setPassword({ userId: randomUUID(), password: newPassword() }),
      Code.Unauthenticated,
      "UNAUTHENTICATED",
    );
    await expectFailure(
      as("grpc").users.createPasswordResetCode({ userId: randomUUID() }),
      Code.Unauthenticated,
      "UNAUTHENTICATED",
    );
  });
});

describe("the admin on itself", () => {
  it("may set its own password with change_required, and is then restricted like anyone", async () => {
    const me = await as("grpc", admin).auth.getCurrentUser({});
    const temporary = newPassword();
    await as("grpc", admin).users.setPassword({ userId: me.user?.id ?? "", password: temporary, changeRequired: true });
    await expectInvalidToken(as("grpc", admin).auth.getCurrentUser({}));
    const t = await loginTokens(ADMIN.email, temporary);
    expect(t.passwordChangeRequired).toBe(true);
    await as("grpc", t.accessToken).auth.changePassword({ currentPassword: temporary, newPassword: ADMIN.password });
    admin = await adminToken(server.url);
    expect((await as("grpc", admin).users.getUser({ userId: me.user?.id ?? "" })).user?.state).toBe(UserState.ACTIVE);
  });
});
