/**
 * Access-token verification, attacked from outside: missing and malformed headers, tampered payloads and
 * signatures, `alg: none`, another algorithm, expired tokens (forged and really expired), wrong or
 * missing iss/aud/exp, a header without `typ: at+jwt`, no session id (`sid`). Every one must be UNAUTHENTICATED over gRPC (grpc-js) and Connect alike. A forged
 * token with valid claims is accepted, which proves the forgeries differ only in what is under test.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpcLib from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { clients, failure, grpcJsClient } from "../helpers/clients.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { forge, payloadOf, unsigned, validClaims, withPayload } from "../helpers/tokens.ts";

const { getCurrentUser } = AuthService.method;
const { getUser, updateUser } = UserService.method;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let adminId: string;
let member: Member;

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  adminId = String(JSON.parse(Buffer.from(admin.split(".")[1], "base64url").toString()).sub);
  member = await createMember(server.url, admin, { prefix: "tokens" });
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

/** Bad tokens, each built lazily (they need the member's id and real token). */
const badTokens: { name: string; token: () => string }[] = [
  { name: "a token that is not a JWT", token: () => "not-a-jwt" },
  {
    name: "a payload changed to claim ROLE_ADMIN (signature kept)",
    token: () => withPayload(member.token, validClaims(member.user.id, "ROLE_ADMIN")),
  },
  {
    name: "a payload changed to another subject (signature kept)",
    token: () => withPayload(member.token, validClaims(adminId, "ROLE_ADMIN")),
  },
  { name: "a flipped signature", token: () => member.token.slice(0, -2) + (member.token.endsWith("AA") ? "BB" : "AA") },
  {
    name: "a signature by another secret",
    token: () => forge(validClaims(adminId, "ROLE_ADMIN"), { secret: "another-secret-another-secret-0123456789" }),
  },
  { name: "alg none, unsigned", token: () => unsigned(validClaims(adminId, "ROLE_ADMIN")) },
  {
    name: "alg none, with the real token's signature",
    token: () => `${unsigned(validClaims(member.user.id)).slice(0, -1)}.${member.token.split(".")[2]}`,
  },
  {
    name: "HS512 with the right secret (algorithm not pinned)",
    token: () => forge(validClaims(member.user.id), { algorithm: "HS512" }),
  },
  {
    name: "an expired token",
    token: () =>
      forge({
        ...validClaims(member.user.id),
        iat: Math.floor(Date.now() / 1000) - 3600,
        exp: Math.floor(Date.now() / 1000) - 60,
      }),
  },
  { name: "no exp", token: () => forge({ ...validClaims(member.user.id), exp: undefined }) },
  { name: "a wrong iss", token: () => forge({ ...validClaims(member.user.id), iss: "someone-else" }) },
  { name: "no iss", token: () => forge({ ...validClaims(member.user.id), iss: undefined }) },
  { name: "a wrong aud", token: () => forge({ ...validClaims(member.user.id), aud: "another-service" }) },
  { name: "no aud", token: () => forge({ ...validClaims(member.user.id), aud: undefined }) },
  { name: "no iat", token: () => forge({ ...validClaims(member.user.id), iat: undefined }) },
  { name: "no jti", token: () => forge({ ...validClaims(member.user.id), jti: undefined }) },
  { name: "no sub", token: () => forge({ ...validClaims(member.user.id), sub: undefined }) },
  { name: "an unknown role", token: () => forge({ ...validClaims(member.user.id), role: "ROLE_ROOT" }) },
  // RFC 8725 §3.11, RFC 9068: a JWT signed with the same key for another purpose is not an access token.
  { name: "header typ JWT", token: () => forge(validClaims(member.user.id), { typ: "JWT" }) },
  { name: "no typ in the header", token: () => forge(validClaims(member.user.id), { typ: undefined }) },
  { name: "header typ dpop+jwt", token: () => forge(validClaims(member.user.id), { typ: "dpop+jwt" }) },
  { name: "header typ at+jwt with junk", token: () => forge(validClaims(member.user.id), { typ: "at+jwt; x" }) },
  { name: "no sid", token: () => forge({ ...validClaims(member.user.id), sid: undefined }) },
  { name: "a sid that is not a UUID", token: () => forge({ ...validClaims(member.user.id), sid: "' or 1=1 --" }) },
  {
    name: "the real token's payload under a header without typ (signature kept)",
    token: () => {
      const [header, payload, signature] = member.token.split(".");
      const { typ: _, ...rest } = JSON.parse(Buffer.from(header, "base64url").toString()) as Record<string, unknown>;
      return `${Buffer.from(JSON.stringify(rest)).toString("base64url")}.${payload}.${signature}`;
    },
  },
];

describe("a call with a bad token", () => {
  it.each(badTokens)("is UNAUTHENTICATED over gRPC (grpc-js) with $name", async ({ token }) => {
    const t = token();
    for (const call of [grpc.call(getCurrentUser, {}, t), grpc.call(getUser, { userId: member.user.id }, t)]) {
      const f = await failure(call);
      expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
      expect(f.message).not.toContain(t);
    }
  });

  it.each(badTokens)("is UNAUTHENTICATED over Connect JSON with $name", async ({ token }) => {
    const t = token();
    const f = await failure(clients(server.url, "connect-json-h1", () => t).auth.getCurrentUser({}));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });

  it("with no authorization header is UNAUTHENTICATED", async () => {
    const f = await failure(grpc.call(getCurrentUser, {}));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });

  it.each([
    ["an empty Bearer", "Bearer "],
    ["another scheme", `Basic ${Buffer.from(`${ADMIN.email}:${ADMIN.password}`).toString("base64")}`],
    ["a token without scheme", "TOKEN"],
  ])("with %s header is UNAUTHENTICATED", async (_name, header) => {
    const client = grpcJsClient(server.port);
    try {
      const md = new grpcLib.Metadata();
      md.set("authorization", header.replace("TOKEN", member.token));
      const error = await new Promise<grpcLib.ServiceError | null>((done) => {
        client.makeUnaryRequest(
          "/auth.v1.AuthService/GetCurrentUser",
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          md,
          (err) => done(err),
        );
      });
      expect(error?.code).toBe(grpcLib.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  });

  it("changes nothing: an UpdateUser with a forged admin token leaves the row alone", async () => {
    const forged = unsigned(validClaims(adminId, "ROLE_ADMIN"));
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: member.user.id, displayName: "pwned" }, updateMask: { paths: ["display_name"] } },
        forged,
      ),
    );
    expect(f.code).toBe(Code.Unauthenticated);
    const me = await grpc.call(getCurrentUser, {}, member.token);
    expect(me.user?.displayName).not.toBe("pwned");
  });
});

describe("a well-formed token", () => {
  it("forged with every claim right is accepted (the forgeries above differ only in what they test)", async () => {
    const me = await grpc.call(getCurrentUser, {}, forge(validClaims(member.user.id)));
    expect(me.user?.id).toBe(member.user.id);
    const asAdmin = await grpc.call(getUser, { userId: member.user.id }, forge(validClaims(adminId, "ROLE_ADMIN")));
    expect(asAdmin.user?.id).toBe(member.user.id);
  });

  it("carries typ at+jwt in its header and the session id (sid) as issued; application/at+jwt is accepted", async () => {
    const [header] = member.token.split(".");
    expect(JSON.parse(Buffer.from(header, "base64url").toString())).toMatchObject({ typ: "at+jwt" });
    expect(payloadOf(member.token).sid).toMatch(/^[0-9a-f-]{36}$/);
    const t = forge(validClaims(member.user.id), { typ: "application/AT+JWT" });
    expect((await grpc.call(getCurrentUser, {}, t)).user?.id).toBe(member.user.id);
  });

  it("is accepted with a lower-case bearer scheme", async () => {
    const res = await clients(server.url, "grpc").auth.getCurrentUser(
      {},
      { headers: { authorization: `bearer ${member.token}` } },
    );
    expect(res.user?.id).toBe(member.user.id);
  });

  it("of a user who no longer exists is UNAUTHENTICATED on GetCurrentUser", async () => {
    const ghost = forge(validClaims("00000000-0000-4000-8000-000000000000"));
    const f = await failure(grpc.call(getCurrentUser, {}, ghost));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });
});

describe("a token of a user changed after it was issued", () => {
  it("is UNAUTHENTICATED once the user is suspended, and the user cannot change itself", async () => {
    const m = await createMember(server.url, admin, { prefix: "suspend-me" });
    await grpc.call(
      updateUser,
      { user: { id: m.user.id, state: UserState.SUSPENDED }, updateMask: { paths: ["state"] } },
      admin,
    );
    const me = await failure(grpc.call(getCurrentUser, {}, m.token));
    expect([me.code, me.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
    const f = await failure(
      grpc.call(
        updateUser,
        { user: { id: m.user.id, displayName: "Still here" }, updateMask: { paths: ["display_name"] } },
        m.token,
      ),
    );
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
    expect((await grpc.call(getUser, { userId: m.user.id }, admin)).user?.displayName).not.toBe("Still here");
  });

  it("is UNAUTHENTICATED once the user is deleted (GetUser on itself)", async () => {
    const m = await createMember(server.url, admin, { prefix: "delete-me" });
    await grpc.call(UserService.method.deleteUser, { userId: m.user.id }, admin);
    const f = await failure(grpc.call(getUser, { userId: m.user.id }, m.token));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });
});

describe("a really expired token", () => {
  let short: TestServer;
  beforeAll(async () => {
    // exp is whole seconds, so a 2 s TTL leaves the token valid for at least one second after issue.
    short = await startTestServer({ ACCESS_TOKEN_TTL: "2s" });
  });
  afterAll(() => short?.close());

  it("works until ACCESS_TOKEN_TTL has passed, then is UNAUTHENTICATED", async () => {
    const res = await clients(short.url, "grpc").auth.login(ADMIN);
    const token = res.tokens?.accessToken;
    const expiresAt = res.tokens?.accessTokenExpireTime ? timestampDate(res.tokens.accessTokenExpireTime).getTime() : 0;
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(2000);
    const c = clients(short.url, "grpc", () => token);
    await c.auth.getCurrentUser({});
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 150));
    const f = await failure(c.auth.getCurrentUser({}));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });
});
