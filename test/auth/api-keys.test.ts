/**
 * API keys over the wire: CreateApiKey, ListApiKeys and DeleteApiKey on gRPC (grpc-js and connect-node),
 * Connect and gRPC-web; who may manage whose keys; every error of the contract with its reason and nothing
 * changed; the secret as a bearer token, with the user's current role and state (suspension, deletion,
 * demotion, expiry; a password change leaves keys alone); made-up secrets refused without a query per call;
 * last_used_time written after use; the secret never in clear in a table or a log line. Replicas are in
 * api-keys-replicas.test.ts.
 */
import { randomUUID } from "node:crypto";
import { timestampDate, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { newApiKeySecret } from "../../src/auth/api-key-secret.ts";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { type Clients, clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";
import { expectDenied, expectInvalidToken } from "../security/expect.ts";

let server: TestServer;
let admin: string;
let grpc: GrpcJs;
/** Every secret handed out in this file: none may appear in a table or a log line. */
const secrets: string[] = [];

beforeAll(async () => {
  // Last uses are written every 200 ms here (the default is a minute).
  server = await startTestServer({ API_KEY_LAST_USED_INTERVAL: "200ms" });
  admin = await adminToken(server.url);
  grpc = grpcJs(server.port);
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

const as = (token: string, transport: TransportName = "grpc"): Clients => clients(server.url, transport, () => token);
const member = (prefix: string) => createMember(server.url, admin, { prefix });

async function newKey(owner: string, token = admin, displayName = "a backend"): Promise<string> {
  const res = await as(token).users.createApiKey({ userId: owner, displayName });
  secrets.push(res.secret);
  return res.secret;
}

const liveKeys = async (userId: string) =>
  (
    await query<{ n: number }>(
      server.databaseUrl,
      "select count(*)::int as n from api_keys where user_id = $1 and delete_time is null",
      [userId],
    )
  )[0].n;

describe("CreateApiKey, ListApiKeys, DeleteApiKey", () => {
  for (const transport of ["grpc", "connect-h1", "connect-json-h1", "grpc-web-h2"] as const) {
    it(`create, list (newest first, no secret) and delete over ${transport}`, async () => {
      const m = await member(`keys-${transport}`);
      const c = as(admin, transport);
      const started = Date.now();
      const first = await c.users.createApiKey({ userId: m.user.id, displayName: "first" });
      const second = await c.users.createApiKey({ userId: m.user.id, displayName: "second" });
      secrets.push(first.secret, second.secret);
      const k = first.apiKey;
      expect(first.secret).toMatch(/^usk_[0-9A-Za-z]{49}$/);
      expect(first.secret).not.toBe(second.secret);
      expect(k?.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(k).toMatchObject({ userId: m.user.id, displayName: "first", prefix: first.secret.slice(0, 12) });
      expect(k?.prefix).toMatch(/^usk_[0-9A-Za-z]{8}$/);
      expect(Math.abs(timestampDate(k?.createTime ?? timestampFromMs(0)).getTime() - started)).toBeLessThan(10_000);
      expect(k?.expireTime).toBeUndefined();
      expect(k?.lastUsedTime).toBeUndefined();

      const listed = await c.users.listApiKeys({ userId: m.user.id });
      expect(listed.apiKeys.map((x) => x.displayName)).toEqual(["second", "first"]);
      expect(JSON.stringify(listed, (_, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(
        first.secret.slice(12),
      );
      expect(listed.apiKeys[1]).toEqual(k);

      expect(await c.users.deleteApiKey({ userId: m.user.id, apiKeyId: k?.id ?? "" })).toBeDefined();
      expect((await c.users.listApiKeys({ userId: m.user.id })).apiKeys.map((x) => x.id)).toEqual([second.apiKey?.id]);
      await expectInvalidToken(as(first.secret, transport).users.getUser({ userId: m.user.id }), first.secret);
      expect((await as(second.secret, transport).users.getUser({ userId: m.user.id })).user?.id).toBe(m.user.id);
    });
  }

  it("works through @grpc/grpc-js with the secret in the call metadata", async () => {
    const m = await member("keys-grpcjs");
    const created = await grpc.call(
      UserService.method.createApiKey,
      { userId: m.user.id, displayName: "grpc-js" },
      admin,
    );
    secrets.push(created.secret);
    const got = await grpc.call(UserService.method.getUser, { userId: m.user.id }, created.secret);
    expect(got.user?.email).toBe(m.email);
    const listed = await grpc.call(UserService.method.listApiKeys, { userId: m.user.id }, created.secret);
    expect(listed.apiKeys.map((k) => k.id)).toEqual([created.apiKey?.id]);
    await grpc.call(
      UserService.method.deleteApiKey,
      { userId: m.user.id, apiKeyId: created.apiKey?.id ?? "" },
      created.secret,
    );
    await expectInvalidToken(
      grpc.call(UserService.method.getUser, { userId: m.user.id }, created.secret),
      created.secret,
    );
  });

  it("keeps an expire_time in the future, and lists it", async () => {
    const m = await member("keys-expiry");
    const at = new Date(Date.now() + 3_600_000);
    const res = await as(admin).users.createApiKey({
      userId: m.user.id,
      displayName: "expiring",
      expireTime: timestampFromDate(at),
    });
    secrets.push(res.secret);
    expect(timestampDate(res.apiKey?.expireTime ?? timestampFromMs(0)).getTime()).toBe(at.getTime());
    const [listed] = (await as(admin).users.listApiKeys({ userId: m.user.id })).apiKeys;
    expect(timestampDate(listed.expireTime ?? timestampFromMs(0)).getTime()).toBe(at.getTime());
  });
});

describe("validation and errors (each changes nothing)", () => {
  let m: Member;
  beforeAll(async () => {
    m = await member("keys-errors");
  });

  const invalid = async (call: Promise<unknown>, field: string) => {
    const f = await failure(call);
    expect({ code: Code[f.code], reason: f.reason, violations: f.violations }).toEqual({
      code: "InvalidArgument",
      reason: "INVALID_ARGUMENT",
      violations: [field],
    });
    expect(await liveKeys(m.user.id)).toBe(0);
  };

  it("refuses a display_name that is empty, blank or over 100 characters", async () => {
    const c = as(admin).users;
    await invalid(c.createApiKey({ userId: m.user.id, displayName: "" }), "display_name");
    await invalid(c.createApiKey({ userId: m.user.id, displayName: "   " }), "display_name");
    await invalid(c.createApiKey({ userId: m.user.id, displayName: "x".repeat(101) }), "display_name");
    // 100 characters (not bytes) is fine.
    const ok = await c.createApiKey({ userId: m.user.id, displayName: "é".repeat(100) });
    secrets.push(ok.secret);
    await c.deleteApiKey({ userId: m.user.id, apiKeyId: ok.apiKey?.id ?? "" });
  });

  it("refuses an expire_time that is not in the future", async () => {
    for (const when of [new Date(Date.now() - 1000), new Date(Date.now() - 86_400_000)]) {
      const f = await failure(
        as(admin).users.createApiKey({ userId: m.user.id, displayName: "old", expireTime: timestampFromDate(when) }),
      );
      expect({ code: Code[f.code], reason: f.reason, violations: f.violations }).toEqual({
        code: "InvalidArgument",
        reason: "INVALID_ARGUMENT",
        violations: ["expire_time"],
      });
      expect(f.message).toContain("future");
    }
    expect(await liveKeys(m.user.id)).toBe(0);
  });

  it("refuses a user_id that is not a UUID", async () => {
    await invalid(as(admin).users.createApiKey({ userId: "nope", displayName: "x" }), "user_id");
  });

  it("answers USER_NOT_FOUND to an admin for an unknown or deleted user", async () => {
    const gone = await member("keys-gone");
    await as(admin).users.deleteUser({ userId: gone.user.id });
    for (const userId of [randomUUID(), gone.user.id]) {
      const f = await failure(as(admin).users.createApiKey({ userId, displayName: "x" }));
      expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: "NotFound", reason: "USER_NOT_FOUND" });
    }
    expect(await liveKeys(gone.user.id)).toBe(0);
    const f = await failure(as(admin).users.listApiKeys({ userId: randomUUID() }));
    expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: "NotFound", reason: "USER_NOT_FOUND" });
  });

  it("answers API_KEY_NOT_FOUND for an unknown key, a deleted one, or another user's", async () => {
    const other = await member("keys-other");
    const created = await as(admin).users.createApiKey({ userId: other.user.id, displayName: "theirs" });
    secrets.push(created.secret);
    const theirs = created.apiKey?.id ?? "";
    const notFound = async (call: Promise<unknown>) => {
      const f = await failure(call);
      expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: "NotFound", reason: "API_KEY_NOT_FOUND" });
    };
    await notFound(as(admin).users.deleteApiKey({ userId: m.user.id, apiKeyId: randomUUID() }));
    // The admin names the wrong user; the member names its own user and someone else's key.
    await notFound(as(admin).users.deleteApiKey({ userId: m.user.id, apiKeyId: theirs }));
    await notFound(as(m.token).users.deleteApiKey({ userId: m.user.id, apiKeyId: theirs }));
    // Nothing changed: the key still works.
    expect((await as(created.secret).auth.getCurrentUser({})).user?.id).toBe(other.user.id);
    await as(admin).users.deleteApiKey({ userId: other.user.id, apiKeyId: theirs });
    await notFound(as(admin).users.deleteApiKey({ userId: other.user.id, apiKeyId: theirs }));
  });

  it(`refuses a 101st key with FAILED_PRECONDITION API_KEY_LIMIT_REACHED`, async () => {
    const full = await member("keys-full");
    // 100 keys through SQL (100 calls would only be slower), then the 101st through the API.
    await query(
      server.databaseUrl,
      `insert into api_keys (id, user_id, display_name, prefix, secret_hash, create_time, update_time)
       select gen_random_uuid(), $1::uuid, 'k' || i, 'usk_00000000', sha256(('k' || i || $1::text)::bytea), now(), now()
       from generate_series(1, 100) as i`,
      [full.user.id],
    );
    const f = await failure(as(admin).users.createApiKey({ userId: full.user.id, displayName: "one too many" }));
    expect({ code: Code[f.code], reason: f.reason }).toEqual({
      code: "FailedPrecondition",
      reason: "API_KEY_LIMIT_REACHED",
    });
    expect(f.message).toContain("100");
    expect(await liveKeys(full.user.id)).toBe(100);
    // A deleted key no longer counts.
    const [one] = (await as(admin).users.listApiKeys({ userId: full.user.id })).apiKeys;
    await as(admin).users.deleteApiKey({ userId: full.user.id, apiKeyId: one.id });
    secrets.push((await as(admin).users.createApiKey({ userId: full.user.id, displayName: "fits" })).secret);
  });
});

describe("who may manage keys", () => {
  it("lets a user manage its own keys", async () => {
    const m = await member("keys-self");
    const c = as(m.token).users;
    const res = await c.createApiKey({ userId: m.user.id, displayName: "mine" });
    secrets.push(res.secret);
    expect((await c.listApiKeys({ userId: m.user.id })).apiKeys.map((k) => k.id)).toEqual([res.apiKey?.id]);
    await c.deleteApiKey({ userId: m.user.id, apiKeyId: res.apiKey?.id ?? "" });
    expect((await c.listApiKeys({ userId: m.user.id })).apiKeys).toEqual([]);
  });

  it("refuses a non-admin every call on another user's keys (PERMISSION_DENIED), with a JWT or a key", async () => {
    const m = await member("keys-nosy");
    const victim = await member("keys-victim");
    const key = await newKey(victim.user.id);
    const [victimKey] = (await as(admin).users.listApiKeys({ userId: victim.user.id })).apiKeys;
    const ownKey = await newKey(m.user.id);
    for (const token of [m.token, ownKey]) {
      const c = as(token).users;
      await expectDenied(c.createApiKey({ userId: victim.user.id, displayName: "mine now" }));
      await expectDenied(c.listApiKeys({ userId: victim.user.id }));
      await expectDenied(c.deleteApiKey({ userId: victim.user.id, apiKeyId: victimKey.id }));
      // Nor the admin's.
      const [adminUser] = (await as(admin).users.listUsers({ filter: "role = ROLE_ADMIN" })).users;
      await expectDenied(c.createApiKey({ userId: adminUser.id, displayName: "escalate" }));
    }
    expect(await liveKeys(victim.user.id)).toBe(1);
    expect((await as(key).auth.getCurrentUser({})).user?.id).toBe(victim.user.id);
  });

  it("needs a token at all", async () => {
    const f = await failure(clients(server.url, "grpc").users.listApiKeys({ userId: randomUUID() }));
    expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: "Unauthenticated", reason: "UNAUTHENTICATED" });
  });
});

describe("the secret as a bearer token", () => {
  it("acts as its user with that user's role: a user's key cannot ListUsers, an admin's can", async () => {
    const m = await member("keys-role");
    const userKey = await newKey(m.user.id);
    expect((await as(userKey).users.getUser({ userId: m.user.id })).user?.email).toBe(m.email);
    expect((await as(userKey, "connect-h1").auth.getCurrentUser({})).user?.id).toBe(m.user.id);
    await expectDenied(as(userKey).users.listUsers({}));

    const boss = await as(admin).users.createUser({
      user: { email: `boss-${randomUUID().slice(0, 8)}@example.com`, displayName: "Boss", role: Role.ADMIN },
    });
    const adminKey = await newKey(boss.user?.id ?? "");
    expect((await as(adminKey, "grpc-web-h1").users.listUsers({ pageSize: 1 })).users).toHaveLength(1);
    // Demoted: the key stops granting admin at once, but still authenticates.
    await as(admin).users.updateUser({
      user: { id: boss.user?.id, role: Role.USER },
      updateMask: { paths: ["role"] },
    });
    await expectDenied(as(adminKey).users.listUsers({}));
    expect((await as(adminKey).auth.getCurrentUser({})).user?.role).toBe(Role.USER);
  });

  it("stops while the user is suspended, works again when reactivated; stops when the user is deleted", async () => {
    const m = await member("keys-suspend");
    const key = await newKey(m.user.id);
    const setState = (state: UserState) =>
      as(admin).users.updateUser({ user: { id: m.user.id, state }, updateMask: { paths: ["state"] } });
    await setState(UserState.SUSPENDED);
    await expectInvalidToken(as(key).auth.getCurrentUser({}), key);
    await setState(UserState.ACTIVE);
    expect((await as(key).auth.getCurrentUser({})).user?.id).toBe(m.user.id);
    await as(admin).users.deleteUser({ userId: m.user.id });
    await expectInvalidToken(as(key).users.getUser({ userId: m.user.id }), key);
  });

  it("ends a WatchUsers opened with an admin's key when the key is deleted", async () => {
    const boss = await as(admin).users.createUser({
      user: { email: `watcher-${randomUUID().slice(0, 8)}@example.com`, displayName: "Watcher", role: Role.ADMIN },
    });
    const userId = boss.user?.id ?? "";
    const created = await as(admin).users.createApiKey({ userId, displayName: "watch" });
    secrets.push(created.secret);
    const ended = (async () => {
      for await (const _ of as(created.secret).users.watchUsers({})) {
        // changes and heartbeats
      }
    })().then(
      () => "ended without error",
      (e: unknown) => Code[(e as { code: Code }).code],
    );
    await new Promise((r) => setTimeout(r, 200));
    await as(admin).users.deleteApiKey({ userId, apiKeyId: created.apiKey?.id ?? "" });
    // The watch checks its caller again when it wakes: at the latest with the next change.
    await member("wake-the-watch");
    expect(await ended).toBe("Unauthenticated");
  });

  it("survives the user's password change (a key is not a session)", async () => {
    const m = await member("keys-password");
    const key = await newKey(m.user.id);
    await as(m.token).auth.changePassword({ currentPassword: m.password, newPassword: `new-${randomUUID()}` });
    await expectInvalidToken(as(m.token).auth.getCurrentUser({}));
    expect((await as(key).auth.getCurrentUser({})).user?.id).toBe(m.user.id);
  });

  it("stops at its expire_time, with the answer of any bad token", async () => {
    const m = await member("keys-expired");
    const res = await as(admin).users.createApiKey({
      userId: m.user.id,
      displayName: "short-lived",
      expireTime: timestampFromMs(Date.now() + 1500),
    });
    secrets.push(res.secret);
    expect((await as(res.secret).auth.getCurrentUser({})).user?.id).toBe(m.user.id);
    await new Promise((r) => setTimeout(r, 1600));
    await expectInvalidToken(as(res.secret).auth.getCurrentUser({}), res.secret);
    // Listed until deleted.
    expect((await as(admin).users.listApiKeys({ userId: m.user.id })).apiKeys.map((k) => k.id)).toEqual([
      res.apiKey?.id,
    ]);
  });

  it("refuses malformed and made-up secrets with the answer of any bad token", async () => {
    const real = await newKey((await member("keys-forged")).user.id);
    const flipped = real.slice(0, 20) + (real[20] === "a" ? "b" : "a") + real.slice(21);
    for (const bad of ["usk_", "usk_short", `${real}x`, flipped, newApiKeySecret().secret, real.toLowerCase()]) {
      if (bad === real) continue;
      await expectInvalidToken(as(bad).auth.getCurrentUser({}), bad);
    }
  });

  it("records last_used_time after use (batched), without moving update_time", async () => {
    const m = await member("keys-used");
    const key = await newKey(m.user.id);
    const before = await query<{ update_time: Date }>(
      server.databaseUrl,
      "select update_time from api_keys where user_id = $1",
      [m.user.id],
    );
    const used = Date.now();
    await as(key).auth.getCurrentUser({});
    let listed: Date | undefined;
    for (let i = 0; i < 50 && !listed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const [k] = (await as(admin).users.listApiKeys({ userId: m.user.id })).apiKeys;
      listed = k.lastUsedTime && timestampDate(k.lastUsedTime);
    }
    expect(listed?.getTime()).toBeGreaterThanOrEqual(used - 1000);
    const after = await query<{ update_time: Date }>(
      server.databaseUrl,
      "select update_time from api_keys where user_id = $1",
      [m.user.id],
    );
    expect(after[0].update_time.getTime()).toBe(before[0].update_time.getTime());
  });
});

describe("made-up secrets cost no query per call", () => {
  const polls = async () => {
    const samples = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
    const count = (why: string) => samples.get(sampleKey("api_key_polls_total", { why })) ?? Number.NaN;
    return { miss: count("miss"), all: count("miss") + count("interval") + count("load") };
  };
  /** Reads of the api_keys table so far (sequential and index scans), as PostgreSQL counts them. */
  const scans = async () =>
    (
      await query<{ n: number }>(
        server.databaseUrl,
        "select (seq_scan + coalesce(idx_scan, 0))::int as n from pg_stat_user_tables where relname = 'api_keys'",
      )
    )[0].n;

  it("answers 200 concurrent unknown secrets and 200 with a bad checksum from memory (a shared poll or two)", async () => {
    const before = await polls();
    const scansBefore = await scans();
    const started = performance.now();
    const unknown = Array.from({ length: 200 }, () => newApiKeySecret().secret);
    await Promise.all(unknown.map((s) => expectInvalidToken(as(s).auth.getCurrentUser({}))));
    for (let i = 0; i < 200; i++) {
      const s = newApiKeySecret().secret;
      await expectInvalidToken(as(`${s.slice(0, -1)}${s.endsWith("0") ? "1" : "0"}`).auth.getCurrentUser({}));
    }
    const elapsed = performance.now() - started;
    const after = await polls();
    // The misses shared their polls: at most one per 100 ms of the run, far from one per call.
    expect(after.miss - before.miss).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1);
    expect(after.miss - before.miss).toBeLessThan(20);
    // And the database agrees: the table was read by the polls only. PostgreSQL publishes an idle
    // connection's counts up to 10 s late, hence the wait (and a margin for counts older than the test).
    await new Promise((r) => setTimeout(r, 11_000));
    const read = (await scans()) - scansBefore;
    const polled = (await polls()).all - before.all;
    expect(read).toBeLessThanOrEqual(polled + 30);
    expect(read).toBeLessThan(100);
  }, 60_000);
});

describe("pruning", () => {
  it("deletes a key's row a day after its deletion, and keeps recently deleted ones", async () => {
    // A server of its own: its pruner (every 300 ms) would read api_keys during the count of reads above.
    const pruned = await startTestServer({ PRUNE_INTERVAL: "300ms" });
    try {
      const boss = await adminToken(pruned.url);
      const m = await createMember(pruned.url, boss, { prefix: "keys-prune" });
      const c = clients(pruned.url, "grpc", () => boss).users;
      for (const displayName of ["old", "recent"]) {
        const k = await c.createApiKey({ userId: m.user.id, displayName });
        secrets.push(k.secret);
        await c.deleteApiKey({ userId: m.user.id, apiKeyId: k.apiKey?.id ?? "" });
      }
      await query(
        pruned.databaseUrl,
        "update api_keys set delete_time = now() - interval '25 hours' where user_id = $1 and display_name = 'old'",
        [m.user.id],
      );
      const names = async () =>
        (
          await query<{ display_name: string }>(
            pruned.databaseUrl,
            "select display_name from api_keys where user_id = $1 order by display_name",
            [m.user.id],
          )
        ).map((r) => r.display_name);
      for (let i = 0; i < 50 && (await names()).length > 1; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await names()).toEqual(["recent"]);
    } finally {
      await pruned.close();
    }
  });
});

describe("secrets at rest and in logs", () => {
  it("never stores or logs a secret in clear", async () => {
    expect(secrets.length).toBeGreaterThan(10);
    const tables = await query<{ table_name: string }>(
      server.databaseUrl,
      "select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'",
    );
    expect(tables.map((t) => t.table_name)).toContain("api_keys");
    for (const { table_name } of tables) {
      const rows = await query<{ t: string }>(server.databaseUrl, `select t::text as t from "${table_name}" as t`);
      const dump = rows.map((r) => r.t).join("\n");
      // The random part is what must not be there (the prefix is shown on purpose).
      for (const s of secrets) expect(dump, `table ${table_name}`).not.toContain(s.slice(12));
    }
    const logs = server.logText();
    for (const s of secrets) expect(logs).not.toContain(s.slice(12));
  });
});
