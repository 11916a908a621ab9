/**
 * The rules every one-time code follows, for both kinds (ResetPassword with a CreatePasswordResetCode code,
 * VerifyEmail with a CreateEmailVerificationCode code), over the wire: single use; at most 5 wrong tries,
 * then dead even with the right code, counted exactly under concurrent tries; a new code replaces the
 * previous one; a code of one purpose is nothing to the other; expiry (RESET_CODE_TTL=1s on a server of its
 * own, which also prunes what is spent); one answer, to the byte, for a wrong, used, dead, expired or voided
 * code and for an unknown email, a deleted user or a service account; the per-email rate limit; and the code
 * never in clear in any table or log line.
 */
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserKind } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { type Clients, clients, type Failure, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { expectRetryLater } from "../security/expect.ts";

let server: TestServer;
let admin: string;
/** Every code issued in this file on `server`, for the scans of the tables and the log. */
const issued: string[] = [];

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const as = (s: TestServer, name: TransportName = "grpc", token?: string): Clients => clients(s.url, name, () => token);

/** One kind of code: how it is made, how it is used, and how to tell it worked. */
interface Kind {
  name: string;
  purpose: string;
  issue(s: TestServer, adminToken: string, userId: string): Promise<string>;
  use(c: Clients, email: string, code: string): Promise<unknown>;
  /** True when the code's effect is there (the password is the one given / the email is verified). */
  took(s: TestServer, adminToken: string, m: Member): Promise<boolean>;
}

const kinds: Kind[] = [
  {
    name: "password reset",
    purpose: "password_reset",
    issue: async (s, token, userId) => (await as(s, "grpc", token).users.createPasswordResetCode({ userId })).code,
    use: (c, email, code) => c.auth.resetPassword({ email, code, newPassword: `reset-to-${email}-ok` }),
    took: async (s, _token, m) =>
      as(s)
        .auth.login({ email: m.email, password: `reset-to-${m.email}-ok` })
        .then(
          () => true,
          () => false,
        ),
  },
  {
    name: "email verification",
    purpose: "email_verification",
    issue: async (s, token, userId) => (await as(s, "grpc", token).users.createEmailVerificationCode({ userId })).code,
    use: (c, email, code) => c.auth.verifyEmail({ email, code }),
    took: async (s, token, m) =>
      (await as(s, "grpc", token).users.getUser({ userId: m.user.id })).user?.emailVerified === true,
  },
];

async function issue(kind: Kind, m: Member): Promise<string> {
  const code = await kind.issue(server, admin, m.user.id);
  issued.push(code);
  return code;
}

/** A code of the same shape that is not `code`. */
function wrong(code: string): string {
  return code.startsWith("2") ? `3${code.slice(1)}` : `2${code.slice(1)}`;
}

async function invalidCode(call: Promise<unknown>): Promise<Failure> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({
    code: Code[Code.InvalidArgument],
    reason: "INVALID_CODE",
  });
  return f;
}

/** What a caller sees of a failure: all of it but the error object. */
const seen = (f: Failure) => ({
  code: f.code,
  reason: f.reason,
  domain: f.domain,
  message: f.message,
  violations: f.violations,
});

async function attempts(m: Member, kind: Kind): Promise<number | undefined> {
  const rows = await query<{ attempts: number }>(
    server.databaseUrl,
    "select attempts from one_time_codes where user_id = $1 and purpose = $2",
    [m.user.id, kind.purpose],
  );
  return rows[0]?.attempts;
}

describe.each(kinds)("a $name code", (kind) => {
  const newMember = () => createMember(server.url, admin, { prefix: kind.purpose.replace("_", "-") });

  it("works once", async () => {
    const m = await newMember();
    const code = await issue(kind, m);
    await kind.use(as(server), m.email, code);
    expect(await kind.took(server, admin, m)).toBe(true);
    await invalidCode(kind.use(as(server, "connect-json-h1"), m.email, code));
  });

  it("accepts 4 wrong tries and then the right code", async () => {
    const m = await newMember();
    const code = await issue(kind, m);
    for (let i = 0; i < 4; i++) await invalidCode(kind.use(as(server), m.email, wrong(code)));
    expect(await attempts(m, kind)).toBe(4);
    await kind.use(as(server), m.email, code);
    expect(await kind.took(server, admin, m)).toBe(true);
  });

  it("is dead after 5 wrong tries, even with the right code", async () => {
    const m = await newMember();
    const code = await issue(kind, m);
    for (let i = 0; i < 5; i++) await invalidCode(kind.use(as(server, "connect-json-h1"), m.email, wrong(code)));
    await invalidCode(kind.use(as(server), m.email, code));
    expect(await attempts(m, kind)).toBe(5);
    expect(await kind.took(server, admin, m)).toBe(false);
  });

  it("counts concurrent wrong tries exactly: 20 at once leave it dead at 5", async () => {
    const m = await newMember();
    const code = await issue(kind, m);
    const tries = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        failure(kind.use(as(server, i % 2 ? "grpc" : "connect-h2"), m.email, wrong(code))),
      ),
    );
    expect(new Set(tries.map((f) => f.reason))).toEqual(new Set(["INVALID_CODE"]));
    expect(await attempts(m, kind)).toBe(5);
    await invalidCode(kind.use(as(server), m.email, code));
  });

  it("lets exactly one of 8 concurrent right tries through", async () => {
    const m = await newMember();
    const code = await issue(kind, m);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => kind.use(as(server), m.email, code)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") await invalidCode(Promise.reject(r.reason));
    expect(await kind.took(server, admin, m)).toBe(true);
  });

  it("is replaced by a new code for the same user, which starts with 5 tries again", async () => {
    const m = await newMember();
    const first = await issue(kind, m);
    for (let i = 0; i < 3; i++) await invalidCode(kind.use(as(server), m.email, wrong(first)));
    const second = await issue(kind, m);
    expect(second).not.toBe(first);
    expect(await attempts(m, kind)).toBe(0);
    await invalidCode(kind.use(as(server), m.email, first));
    const rows = await query(server.databaseUrl, "select 1 from one_time_codes where user_id = $1 and purpose = $2", [
      m.user.id,
      kind.purpose,
    ]);
    expect(rows).toHaveLength(1);
    await kind.use(as(server), m.email, second);
    expect(await kind.took(server, admin, m)).toBe(true);
  });

  it("means nothing to the other purpose, and is not spent by trying it there", async () => {
    const m = await newMember();
    const code = await issue(kind, m);
    const other = kinds.find((k) => k !== kind) as Kind;
    await invalidCode(other.use(as(server), m.email, code));
    expect(await other.took(server, admin, m)).toBe(false);
    expect(await attempts(m, kind)).toBe(0);
    await kind.use(as(server), m.email, code);
    expect(await kind.took(server, admin, m)).toBe(true);
  });

  it.each(["grpc", "connect-json-h1"] as const)(
    "gives a wrong, used or dead code and an unknown email, a deleted user or a voided code one answer (%s)",
    async (transport) => {
      const c = as(server, transport);
      const m = await newMember();
      const code = await issue(kind, m);
      const answers: Record<string, Failure> = {};
      answers.unknownEmail = await invalidCode(kind.use(c, uniqueEmail("nobody"), code));
      answers.wrongCode = await invalidCode(kind.use(c, m.email, wrong(code)));
      answers.malformedCode = await invalidCode(kind.use(c, m.email, "not a code at all"));
      await kind.use(c, m.email, code);
      answers.usedCode = await invalidCode(kind.use(c, m.email, code));

      const dead = await newMember();
      const deadCode = await issue(kind, dead);
      for (let i = 0; i < 5; i++) await invalidCode(kind.use(c, dead.email, wrong(deadCode)));
      answers.deadCode = await invalidCode(kind.use(c, dead.email, deadCode));

      const gone = await newMember();
      const goneCode = await issue(kind, gone);
      await as(server, "grpc", admin).users.deleteUser({ userId: gone.user.id });
      answers.deletedUser = await invalidCode(kind.use(c, gone.email, goneCode));

      const moved = await newMember();
      const movedCode = await issue(kind, moved);
      await as(server, "grpc", admin).users.updateUser({
        user: { id: moved.user.id, email: uniqueEmail("moved") },
        updateMask: { paths: ["email"] },
      });
      answers.oldAddress = await invalidCode(kind.use(c, moved.email, movedCode));

      for (const [name, f] of Object.entries(answers)) {
        expect({ name, ...seen(f) }).toEqual({ name, ...seen(answers.unknownEmail) });
        for (const secret of [code, deadCode, goneCode, movedCode]) expect(f.message).not.toContain(secret);
      }
    },
  );
});

describe("a service account", () => {
  it("gets no reset code, and ResetPassword for its email answers as for an unknown one", async () => {
    const svc = await as(server, "grpc", admin).users.createUser({
      user: { email: uniqueEmail("svc"), displayName: "Robot", kind: UserKind.SERVICE },
    });
    const email = svc.user?.email ?? "";
    const f = await failure(as(server, "grpc", admin).users.createPasswordResetCode({ userId: svc.user?.id ?? "" }));
    expect([Code[f.code], f.reason]).toEqual([Code[Code.InvalidArgument], "INVALID_ARGUMENT"]);
    const forService = await invalidCode(
      as(server).auth.resetPassword({ email, code: "ABCDE-FGHJK", newPassword: "robot-password-1" }),
    );
    const forNobody = await invalidCode(
      as(server).auth.resetPassword({
        email: uniqueEmail("nobody"),
        code: "ABCDE-FGHJK",
        newPassword: "robot-password-1",
      }),
    );
    expect(seen(forService)).toEqual(seen(forNobody));
    const [row] = await query<{ password_hash: string | null }>(
      server.databaseUrl,
      "select password_hash from users where id = $1",
      [svc.user?.id],
    );
    expect(row.password_hash).toBeNull();
  });
});

describe("issued codes", () => {
  it("differ (no two of 50 alike) and have the issued shape", async () => {
    const m = await createMember(server.url, admin, { prefix: "many" });
    const codes = new Set<string>();
    for (let i = 0; i < 50; i++) codes.add(await issue(kinds[1], m));
    expect(codes.size).toBe(50);
    for (const c of codes) expect(c).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
  });
});

describe("secrecy", () => {
  /** The ways a code could be written down: as issued, without the hyphen, in lower case. */
  const forms = () => issued.flatMap((c) => [c, c.replace("-", ""), c.toLowerCase(), c.replace("-", "").toLowerCase()]);

  it("keeps no code in clear in any table", async () => {
    // Codes live and used, of both kinds, so the scan below has something to find if it were there.
    const m = await createMember(server.url, admin, { prefix: "scan" });
    for (const kind of kinds) await issue(kind, m);
    const used = await createMember(server.url, admin, { prefix: "scan-used" });
    for (const kind of kinds) await kind.use(as(server), used.email, await issue(kind, used));
    expect(issued.length).toBeGreaterThan(20);

    const tables = await query<{ name: string }>(
      server.databaseUrl,
      "select quote_ident(schemaname) || '.' || quote_ident(tablename) as name from pg_tables where schemaname not in ('pg_catalog', 'information_schema')",
    );
    expect(tables.map((t) => t.name)).toContain("public.one_time_codes");
    let rows = 0;
    for (const { name } of tables) {
      const dump = await query<{ t: string }>(server.databaseUrl, `select to_jsonb(x)::text as t from ${name} x`);
      rows += dump.length;
      const text = dump.map((r) => r.t).join("\n");
      for (const form of forms()) expect(text.includes(form), `${name} holds a code`).toBe(false);
    }
    expect(rows).toBeGreaterThan(0);
    // The positive control: the same scan finds what is stored in clear.
    const users = await query<{ t: string }>(server.databaseUrl, "select to_jsonb(x)::text as t from public.users x");
    expect(users.some((r) => r.t.includes(m.email))).toBe(true);
  });

  it("writes no code to the log", async () => {
    const log = server.logText();
    expect(log).toContain("ResetPassword");
    expect(log).toContain("VerifyEmail");
    for (const form of forms()) expect(log.includes(form)).toBe(false);
  });
});

describe("expiry and pruning (RESET_CODE_TTL=1s)", () => {
  let short: TestServer;
  let shortAdmin: string;
  beforeAll(async () => {
    short = await startTestServer({ RESET_CODE_TTL: "1s", PRUNE_INTERVAL: "300ms" });
    shortAdmin = await adminToken(short.url);
  });
  afterAll(() => short?.close());

  const codeRows = async () =>
    (await query<{ n: number }>(short.databaseUrl, "select count(*)::int as n from one_time_codes"))[0].n;

  it.each(kinds)("refuses a $name code past its expire_time, as any invalid code", async (kind) => {
    const m = await createMember(short.url, shortAdmin, { prefix: "expiring" });
    const code = await kind.issue(short, shortAdmin, m.user.id);
    await new Promise((r) => setTimeout(r, 1_300));
    const expired = await invalidCode(kind.use(as(short), m.email, code));
    const unknown = await invalidCode(kind.use(as(short), uniqueEmail("nobody"), code));
    expect(seen(expired)).toEqual(seen(unknown));
    expect(await kind.took(short, shortAdmin, m)).toBe(false);
  });

  it("prunes codes that are expired, used or dead, and keeps live ones", async () => {
    const [{ id }] = await query<{ id: string }>(short.databaseUrl, "select id from users where role = 'admin'");
    const users = await Promise.all(
      [1, 2, 3, 4].map(() => createMember(short.url, shortAdmin, { prefix: "pruned" }).then((m) => m.user.id)),
    );
    const row = (user: string, expire: string, attempts: number, used: string) =>
      query(
        short.databaseUrl,
        `insert into one_time_codes (user_id, purpose, code_hash, email_lower, create_time, expire_time, attempts, used_time)
         values ($1, 'email_verification', '\\x00', 'x@example.com', now(), ${expire}, $2, ${used})`,
        [user, attempts],
      );
    await row(users[0], "now() + interval '1 hour'", 0, "now()"); // used
    await row(users[1], "now() + interval '1 hour'", 5, "null"); // dead
    await row(users[2], "now() - interval '1 second'", 0, "null"); // expired
    await row(users[3], "now() + interval '1 hour'", 4, "null"); // live
    await row(id, "now() + interval '1 hour'", 0, "null"); // live
    const end = Date.now() + 10_000;
    while ((await codeRows()) > 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    const left = await query<{ user_id: string }>(
      short.databaseUrl,
      "select user_id from one_time_codes order by user_id",
    );
    expect(left.map((r) => r.user_id).sort()).toEqual([users[3], id].sort());
  });
});

describe("the per-email limit (RATE_LIMIT_LOGIN_PER_MINUTE=3)", () => {
  let limited: TestServer;
  let limitedAdmin: string;
  beforeAll(async () => {
    limited = await startTestServer({ RATE_LIMIT_LOGIN_PER_MINUTE: "3" });
    limitedAdmin = await adminToken(limited.url);
  });
  afterAll(() => limited?.close());

  it("passes 3 tries of codes for one email a minute (both methods together), then RATE_LIMITED before the code is tried", async () => {
    const m = await createMember(limited.url, limitedAdmin, { prefix: "code-limit" });
    const code = (await as(limited, "grpc", limitedAdmin).users.createEmailVerificationCode({ userId: m.user.id }))
      .code;
    await invalidCode(as(limited).auth.verifyEmail({ email: m.email, code: wrong(code) }));
    await invalidCode(
      as(limited).auth.resetPassword({ email: m.email, code: wrong(code), newPassword: "limited-pw-1" }),
    );
    await invalidCode(as(limited).auth.verifyEmail({ email: m.email.toUpperCase(), code: wrong(code) }));
    const delay = await expectRetryLater(as(limited).auth.verifyEmail({ email: m.email, code }), "RATE_LIMITED");
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(60_000);
    await expectRetryLater(
      as(limited, "connect-json-h1").auth.resetPassword({ email: m.email, code, newPassword: "limited-pw-1" }),
      "RATE_LIMITED",
    );
    // The refused tries touched nothing: only the two wrong VerifyEmail tries that passed were counted.
    const [row] = await query<{ attempts: number; used_time: Date | null }>(
      limited.databaseUrl,
      "select attempts, used_time from one_time_codes where user_id = $1",
      [m.user.id],
    );
    expect(row).toEqual({ attempts: 2, used_time: null });
    // Another email has its own budget, and Login for this one has its own.
    await invalidCode(as(limited).auth.verifyEmail({ email: uniqueEmail("other"), code }));
    await as(limited).auth.login({ email: m.email, password: m.password });
  });
});
