/**
 * SignUp cannot be talked into anything: the role is always ROLE_USER, even when a role is smuggled in as
 * unknown protobuf fields or JSON members; ALLOW_SIGNUP=false answers SIGNUP_DISABLED and creates nothing
 * (while Login keeps working); an email taken in another case is EMAIL_TAKEN; passwords are NFKC-normalized
 * and never truncated (a 100-character password is checked to its last character), and the stored hash is
 * argon2id at the contract's parameters.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role } from "../../gen/user/v1/user_pb.js";
import { uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { grpcFrame, grpcRaw, grpcStatusOf } from "../helpers/raw.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { payloadOf } from "../helpers/tokens.ts";
import { expectDenied } from "./expect.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const anon = () => clients(server.url, "grpc").auth;

async function storedRole(email: string): Promise<string | undefined> {
  return (
    await query<{ role: string }>(server.databaseUrl, "select role from users where lower(email) = lower($1)", [email])
  )[0]?.role;
}

/** A protobuf length-delimited field (short values only). */
function field(no: number, bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(no << 3) | 2, bytes.byteLength]), bytes]);
}

describe("SignUp", () => {
  it("creates a ROLE_USER whose token is a user's token", async () => {
    const res = await anon().signUp({ email: uniqueEmail("signup"), password: "a good password", displayName: "New" });
    expect(res.user?.role).toBe(Role.USER);
    expect(payloadOf(res.tokens?.accessToken ?? "").role).toBe("ROLE_USER");
    await expectDenied(clients(server.url, "grpc", () => res.tokens?.accessToken).users.listUsers({}));
  });

  it("ignores a role smuggled in as unknown protobuf fields (a varint 4 and a nested User with ROLE_ADMIN)", async () => {
    const email = uniqueEmail("smuggle");
    const adminUser = Buffer.concat([field(2, Buffer.from(email)), Buffer.from([0x20, 0x02])]); // User{email, role: ROLE_ADMIN}
    const body = Buffer.concat([
      field(1, Buffer.from(email)),
      field(2, Buffer.from("a good password")),
      field(3, Buffer.from("Smuggler")),
      Buffer.from([0x20, 0x02]), // field 4 (varint) = 2
      field(5, adminUser),
      field(15, adminUser),
    ]);
    const a = await grpcRaw(server.url, "/auth.v1.AuthService/SignUp", grpcFrame(body));
    expect(grpcStatusOf(a).status).toBe(0);
    expect(await storedRole(email)).toBe("user");
  });

  it("ignores or refuses a role smuggled in as JSON members", async () => {
    const email = uniqueEmail("json");
    const res = await fetch(`${server.url}/auth.v1.AuthService/SignUp`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        email,
        password: "a good password",
        displayName: "Json",
        role: "ROLE_ADMIN",
        user: { role: "ROLE_ADMIN" },
      }),
    });
    if (res.status === 200) expect(await storedRole(email)).toBe("user");
    else expect([res.status, await storedRole(email)]).toEqual([400, undefined]);
  });

  it("refuses an email already used, in any case (EMAIL_TAKEN), without touching the existing account", async () => {
    const f = await failure(
      anon().signUp({ email: ADMIN.email.toUpperCase(), password: "a good password", displayName: "Impostor" }),
    );
    expect([Code[f.code], f.reason]).toEqual(["AlreadyExists", "EMAIL_TAKEN"]);
    expect(await storedRole(ADMIN.email)).toBe("admin");
    expect((await anon().login({ email: ADMIN.email, password: ADMIN.password })).user?.role).toBe(Role.ADMIN);
  });

  it("refuses passwords under 8 characters", async () => {
    const f = await failure(anon().signUp({ email: uniqueEmail("short"), password: "1234567", displayName: "Short" }));
    expect([Code[f.code], f.violations]).toEqual(["InvalidArgument", ["password"]]);
  });

  it("stores an argon2id hash at the contract's parameters (m >= 19 MiB, t >= 2, p = 1)", async () => {
    const email = uniqueEmail("hash");
    await anon().signUp({ email, password: "a good password", displayName: "Hash" });
    const [row] = await query<{ password_hash: string }>(
      server.databaseUrl,
      "select password_hash from users where email = $1",
      [email],
    );
    const m = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(row.password_hash);
    expect(m).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(19_456);
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(2);
    expect(Number(m?.[3])).toBe(1);
  });
});

describe("passwords", () => {
  it("are never truncated: a 100-character password does not verify with only its first 72", async () => {
    const email = uniqueEmail("long");
    const password = `${"0123456789".repeat(9)}-the-end!`;
    await anon().signUp({ email, password, displayName: "Long" });
    expect((await failure(anon().login({ email, password: password.slice(0, 72) }))).reason).toBe(
      "INVALID_CREDENTIALS",
    );
    expect((await anon().login({ email, password })).user?.email).toBe(email);
  });

  it("are NFKC-normalized: full-width and composed forms of one password verify alike", async () => {
    const email = uniqueEmail("nfkc");
    await anon().signUp({ email, password: "ｂｌｕｅ－ｏｔｔｅｒ－９", displayName: "Wide" });
    expect((await anon().login({ email, password: "blue-otter-9" })).user?.email).toBe(email);
    const email2 = uniqueEmail("nfkc2");
    await anon().signUp({ email: email2, password: "cafe\u0301-password", displayName: "Accent" });
    expect((await anon().login({ email: email2, password: "caf\u00e9-password" })).user?.email).toBe(email2);
  });
});

describe("with ALLOW_SIGNUP=false", () => {
  let closed: TestServer;
  beforeAll(async () => {
    closed = await startTestServer({ ALLOW_SIGNUP: "false" });
  });
  afterAll(() => closed?.close());

  it("SignUp is SIGNUP_DISABLED (PERMISSION_DENIED) and creates nothing; Login still works", async () => {
    const email = uniqueEmail("closed");
    const c = clients(closed.url, "connect-json-h1").auth;
    const f = await failure(c.signUp({ email, password: "a good password", displayName: "Closed" }));
    expect([Code[f.code], f.reason]).toEqual(["PermissionDenied", "SIGNUP_DISABLED"]);
    expect(await query(closed.databaseUrl, "select 1 from users where email = $1", [email])).toHaveLength(0);
    expect((await c.login({ email: ADMIN.email, password: ADMIN.password })).user?.email).toBe(ADMIN.email);
  });
});
