/**
 * The password policy (src/passwords/password-policy.ts) and the cost caps of imported hashes
 * (src/passwords/passwords.ts), over the wire: the 10,000 most common passwords and the user's own email are
 * refused everywhere a password is set (SignUp, CreateUser, ChangePassword, ImportUsers) with
 * INVALID_ARGUMENT / WEAK_PASSWORD and a field violation, and change nothing; imported hashes above the caps
 * fail their row; a stored hash above the caps is never computed (the login fails like a wrong password, in
 * the usual time) and is reported in the log without the hash.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImportUsersRequest } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const anon = (): Clients["auth"] => clients(server.url, "grpc").auth;
const asAdmin = (): Clients["users"] => clients(server.url, "grpc", () => admin).users;
const usersNamed = async (email: string) =>
  (await query(server.databaseUrl, "select 1 from users where lower(email) = lower($1)", [email])).length;

/** Expects INVALID_ARGUMENT / WEAK_PASSWORD with exactly one violation, on `field`. */
async function expectWeak(call: Promise<unknown>, field: string): Promise<string> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason, violations: f.violations }).toEqual({
    code: Code[Code.InvalidArgument],
    reason: "WEAK_PASSWORD",
    violations: [field],
  });
  return f.message;
}

describe("common passwords and the user's own email", () => {
  it("SignUp refuses them, in any case or width, and creates nothing", async () => {
    for (const password of ["password123", "PassWord123", "ｐａｓｓｗｏｒｄ１２３", "qwertyuiop", "iloveyou1"]) {
      const email = uniqueEmail("weak");
      const message = await expectWeak(anon().signUp({ email, password, displayName: "Weak" }), "password");
      expect(message).toMatch(/common/);
      expect(await usersNamed(email)).toBe(0);
    }
    const email = uniqueEmail("self");
    await expectWeak(anon().signUp({ email, password: email.toUpperCase(), displayName: "Self" }), "password");
    expect(await usersNamed(email)).toBe(0);
    // A password that merely contains a common one is fine (no composition rules).
    const ok = await anon().signUp({ email, password: "password123 is not mine", displayName: "Ok" });
    expect(ok.user?.email).toBe(email);
  });

  it("CreateUser refuses them (and still creates users without a password)", async () => {
    const email = uniqueEmail("created");
    await expectWeak(asAdmin().createUser({ user: { email, displayName: "C" }, password: "12345678" }), "password");
    await expectWeak(asAdmin().createUser({ user: { email, displayName: "C" }, password: email }), "password");
    expect(await usersNamed(email)).toBe(0);
    expect((await asAdmin().createUser({ user: { email, displayName: "C" } })).user?.email).toBe(email);
  });

  it("ChangePassword refuses them as new_password: the old password still works, no attempt is counted", async () => {
    const m = await createMember(server.url, admin, { prefix: "changer" });
    const auth = clients(server.url, "grpc", () => m.token).auth;
    await expectWeak(auth.changePassword({ currentPassword: m.password, newPassword: "password1" }), "new_password");
    await expectWeak(auth.changePassword({ currentPassword: m.password, newPassword: m.email }), "new_password");
    const counted = await query(server.databaseUrl, "select 1 from login_failures where email_key = lower($1)", [
      m.email,
    ]);
    expect(counted).toHaveLength(0);
    expect((await anon().login({ email: m.email, password: m.password })).user?.email).toBe(m.email);
  });
});

type Row = Partial<Omit<ImportUsersRequest, "$typeName">>;

async function* rows(list: Iterable<Row>) {
  for (const r of list) yield r;
}

/** A PHC string of the given parameters, with a random salt and digest (never verified). */
const argon2 = (m: number, t: number, p: number) =>
  `$argon2id$v=19$m=${m},t=${t},p=${p}$${randomBytes(16).toString("base64").replace(/=+$/, "")}$${randomBytes(32).toString("base64").replace(/=+$/, "")}`;
const bcrypt = (cost: number) =>
  `$2b$${String(cost).padStart(2, "0")}$${randomBytes(40)
    .toString("base64")
    .replace(/[^./A-Za-z0-9]/g, ".")
    .slice(0, 53)}`;

describe("ImportUsers", () => {
  it("fails rows with a weak password, or a hash above argon2id m=256 MiB, t=10, p=16 or bcrypt cost 14", async () => {
    const p = `imp-${randomUUID().slice(0, 8)}`;
    const row = (i: number, credential: Row["credential"]): Row => ({
      user: { email: `${p}-${i}@example.com`, displayName: `Row ${i}` } as never,
      credential,
    });
    const res = await asAdmin().importUsers(
      rows([
        row(0, { case: "password", value: "password123" }),
        row(1, { case: "password", value: `${p}-1@EXAMPLE.com` }),
        row(2, { case: "passwordHash", value: argon2(262_145, 2, 1) }),
        row(3, { case: "passwordHash", value: argon2(19_456, 11, 1) }),
        row(4, { case: "passwordHash", value: argon2(19_456, 2, 17) }),
        row(5, { case: "passwordHash", value: bcrypt(15) }),
        row(6, { case: "passwordHash", value: bcrypt(31) }),
        // At the caps: accepted.
        row(7, { case: "passwordHash", value: argon2(262_144, 10, 16) }),
        row(8, { case: "passwordHash", value: bcrypt(14) }),
        row(9, { case: "password", value: "a strong imported password" }),
      ]),
    );
    expect(res.failures.map((f) => [f.index, f.reason.split(":")[0]])).toEqual([
      [0, "password"],
      [1, "password"],
      [2, "password_hash"],
      [3, "password_hash"],
      [4, "password_hash"],
      [5, "password_hash"],
      [6, "password_hash"],
    ]);
    expect(res.failures[0].reason).toMatch(/common/);
    expect(res.failures[1].reason).toMatch(/email/);
    expect(res.failures[2].reason).toMatch(/costs more/);
    expect(res.createdCount).toBe(3);
    for (const i of [0, 1, 2, 3, 4, 5, 6]) expect(await usersNamed(`${p}-${i}@example.com`)).toBe(0);
  });
});

describe("a stored hash above the caps (written before they existed)", () => {
  it("is never computed: the login fails like a wrong password, in the usual time, and the log names no hash", async () => {
    for (const hash of [argon2(9_999_999, 4000, 255), bcrypt(31)]) {
      const m = await createMember(server.url, admin, { prefix: "costly" });
      await query(server.databaseUrl, "update users set password_hash = $2 where id = $1", [m.user.id, hash]);
      const started = performance.now();
      const f = await failure(anon().login({ email: m.email, password: m.password }));
      expect([Code[f.code], f.reason]).toEqual([Code[Code.Unauthenticated], "INVALID_CREDENTIALS"]);
      // m=9,999,999 KiB would need ~10 GB and hours; bcrypt cost 31, days.
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(server.logText()).not.toContain(hash.split("$").slice(-2).join("$"));
    }
    const warnings = server.logs.filter((l) => String(l.msg).includes("costs more"));
    expect(warnings.map((l) => [l.algorithm, l.cost])).toEqual([
      ["argon2id", "m=9999999,t=4000,p=255"],
      ["bcrypt", "31"],
    ]);
  });
});
