/**
 * Email verification over the wire (gRPC and Connect JSON): CreateEmailVerificationCode (admin) and VerifyEmail
 * (anyone holding the code): the user comes back with email_verified, which GetUser and the change log show;
 * a new email clears it (UpdateUser) and voids the code issued for the old address; the code works once; its
 * errors. The rules every code follows are in one-time-codes.test.ts.
 */
import { randomUUID } from "node:crypto";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserKind, UserState } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const as = (name: TransportName, token?: string): Clients => clients(server.url, name, () => token);
const newMember = (prefix: string) => createMember(server.url, admin, { prefix });

async function expectInvalidCode(call: Promise<unknown>): Promise<void> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({
    code: Code[Code.InvalidArgument],
    reason: "INVALID_CODE",
  });
}

async function verificationCode(userId: string): Promise<string> {
  return (await as("grpc", admin).users.createEmailVerificationCode({ userId })).code;
}

describe.each(["grpc", "connect-json-h1"] as const)("over %s", (transport) => {
  it("issues a code that expires in RESET_CODE_TTL and verifies the email once", async () => {
    const m = await newMember(`verify-${transport}`);
    expect(m.user.emailVerified).toBe(false);
    const started = Date.now();
    const res = await as(transport, admin).users.createEmailVerificationCode({ userId: m.user.id });
    expect(res.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    const expires = res.expireTime ? timestampDate(res.expireTime).getTime() : 0;
    expect(Math.abs(expires - started - 3_600_000)).toBeLessThan(10_000);

    const verified = await as(transport).auth.verifyEmail({ email: m.email.toUpperCase(), code: res.code });
    expect(verified.user?.id).toBe(m.user.id);
    expect(verified.user?.email).toBe(m.email);
    expect(verified.user?.emailVerified).toBe(true);
    expect(verified.user?.etag).not.toBe(m.user.etag);
    expect((await as(transport, m.token).users.getUser({ userId: m.user.id })).user?.emailVerified).toBe(true);
    // Verifying does not end sessions: the member's token still works.
    expect((await as(transport, m.token).auth.getCurrentUser({})).user?.emailVerified).toBe(true);

    await expectInvalidCode(as(transport).auth.verifyEmail({ email: m.email, code: res.code }));
  });

  it("answers USER_NOT_FOUND for an unknown or deleted user, INVALID_ARGUMENT for a bad id", async () => {
    const unknown = await failure(as(transport, admin).users.createEmailVerificationCode({ userId: randomUUID() }));
    expect([Code[unknown.code], unknown.reason]).toEqual([Code[Code.NotFound], "USER_NOT_FOUND"]);
    const m = await newMember("verify-deleted");
    await as("grpc", admin).users.deleteUser({ userId: m.user.id });
    const deleted = await failure(as(transport, admin).users.createEmailVerificationCode({ userId: m.user.id }));
    expect([Code[deleted.code], deleted.reason]).toEqual([Code[Code.NotFound], "USER_NOT_FOUND"]);
    const bad = await failure(as(transport, admin).users.createEmailVerificationCode({ userId: "not-a-uuid" }));
    expect([Code[bad.code], bad.reason, bad.violations]).toEqual([
      Code[Code.InvalidArgument],
      "INVALID_ARGUMENT",
      ["user_id"],
    ]);
  });

  it.each([
    { name: "an empty email", req: { email: "", code: "ABCDE-FGHJK" }, field: "email" },
    { name: "an empty code", req: { email: "a@example.com", code: "" }, field: "code" },
    {
      name: "an email of 255 chars",
      req: { email: `${"e".repeat(243)}@example.com`, code: "ABCDE-FGHJK" },
      field: "email",
    },
  ])("refuses $name (INVALID_ARGUMENT on $field)", async ({ req, field }) => {
    const f = await failure(as(transport).auth.verifyEmail(req));
    expect([Code[f.code], f.reason, f.violations]).toEqual([Code[Code.InvalidArgument], "INVALID_ARGUMENT", [field]]);
  });
});

describe("a new email", () => {
  it("clears email_verified (UpdateUser) and voids the code issued for the old address", async () => {
    const m = await newMember("verify-moved");
    await as("grpc").auth.verifyEmail({ email: m.email, code: await verificationCode(m.user.id) });
    const pending = await verificationCode(m.user.id);
    const moved = uniqueEmail("verify-moved-to");
    const updated = await as("grpc", admin).users.updateUser({
      user: { id: m.user.id, email: moved },
      updateMask: { paths: ["email"] },
    });
    expect(updated.user?.emailVerified).toBe(false);
    // The code was for the old address: neither address can use it.
    await expectInvalidCode(as("grpc").auth.verifyEmail({ email: m.email, code: pending }));
    await expectInvalidCode(as("grpc").auth.verifyEmail({ email: moved, code: pending }));
    expect((await as("grpc", admin).users.getUser({ userId: m.user.id })).user?.emailVerified).toBe(false);
    // A code for the new address works.
    const res = await as("connect-json-h1").auth.verifyEmail({ email: moved, code: await verificationCode(m.user.id) });
    expect(res.user?.emailVerified).toBe(true);
  });

  it("that differs only in case keeps the flag", async () => {
    const m = await newMember("verify-case");
    await as("grpc").auth.verifyEmail({ email: m.email, code: await verificationCode(m.user.id) });
    const updated = await as("grpc", admin).users.updateUser({
      user: { id: m.user.id, email: m.email.toUpperCase() },
      updateMask: { paths: ["email"] },
    });
    expect(updated.user?.emailVerified).toBe(true);
  });
});

describe("VerifyEmail", () => {
  it("verifies an already verified email again without error (the code is spent)", async () => {
    const m = await newMember("verify-twice");
    await as("grpc").auth.verifyEmail({ email: m.email, code: await verificationCode(m.user.id) });
    const again = await as("grpc").auth.verifyEmail({ email: m.email, code: await verificationCode(m.user.id) });
    expect(again.user?.emailVerified).toBe(true);
    const rows = await query<{ used: boolean }>(
      server.databaseUrl,
      "select used_time is not null as used from one_time_codes where user_id = $1",
      [m.user.id],
    );
    expect(rows).toEqual([{ used: true }]);
  });

  it("works for a suspended user and a service account (an address is an address)", async () => {
    const m = await newMember("verify-suspended");
    await as("grpc", admin).users.updateUser({
      user: { id: m.user.id, state: UserState.SUSPENDED },
      updateMask: { paths: ["state"] },
    });
    const s = await as("grpc").auth.verifyEmail({ email: m.email, code: await verificationCode(m.user.id) });
    expect(s.user?.emailVerified).toBe(true);
    const svc = await as("grpc", admin).users.createUser({
      user: { email: uniqueEmail("svc-verify"), displayName: "Robot", kind: UserKind.SERVICE },
    });
    const v = await as("grpc").auth.verifyEmail({
      email: svc.user?.email ?? "",
      code: await verificationCode(svc.user?.id ?? ""),
    });
    expect(v.user?.emailVerified).toBe(true);
  });

  it("records the change in the user's history (an update event, with the user after it)", async () => {
    const m = await newMember("verify-history");
    await as("grpc").auth.verifyEmail({ email: m.email, code: await verificationCode(m.user.id) });
    const rows = await query<{ type: string }>(
      server.databaseUrl,
      "select type from user_changes where user_id = $1 order by id",
      [m.user.id],
    );
    expect(rows.map((r) => r.type)).toEqual(["created", "updated"]);
  });
});
