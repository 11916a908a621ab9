/**
 * Auth events over the wire (docs/adr/0023-auth-events.md): every event type recorded by the call that
 * causes it, with the user, the session, the client address (after TRUST_PROXY) and the user agent;
 * ListAuthEvents newest first with its filter, paging and errors, admin only; no password, token, code or
 * secret in the table or the logs; and events still buffered when a server closes written by its shutdown.
 * Events are written in batches, so every check polls ListAuthEvents until the flush has happened.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuthEvent, AuthEventType as T } from "../../gen/auth/v1/auth_event_pb.js";
import { UserKind, UserState } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, type Member, uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";
import { authOf, loginFrom, sidOf } from "./session-helpers.ts";

let a: TestServer;
let admin: string;
/** Every secret a test sends or receives: none may reach auth_events or the logs. */
const secrets: string[] = [];
const keep = <S extends string>(s: S): S => {
  secrets.push(s);
  return s;
};

beforeAll(async () => {
  a = await startTestServer();
  admin = keep(await adminToken(a.url));
});
afterAll(async () => {
  await a?.close();
});

const UA = "auth-events-test/1.0";
const asAdmin = () => clients(a.url, "grpc", () => admin);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every event matching `filter`, newest first (all pages). */
async function listAll(filter: string, server = a): Promise<AuthEvent[]> {
  const out: AuthEvent[] = [];
  let pageToken = "";
  do {
    const res = await clients(server.url, "grpc", () => admin).auth.listAuthEvents({ filter, pageToken });
    out.push(...res.events);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

/** Polls until `filter` lists at least `n` events (they are written in batches); returns them. */
async function waitFor(filter: string, n: number, server = a): Promise<AuthEvent[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const events = await listAll(filter, server);
    if (events.length >= n || Date.now() > deadline) return events;
    await sleep(50);
  }
}

const ofUser = (id: string) => `user_id = "${id}"`;
const typesOf = (events: AuthEvent[]) => events.map((e) => T[e.type]);

async function member(prefix: string): Promise<Member> {
  const m = await createMember(a.url, admin, { prefix });
  keep(m.password);
  keep(m.token);
  return m;
}

describe("recording", () => {
  it("records LOGIN_SUCCEEDED with the user, the session, the client address and the user agent", async () => {
    const m = await member("ev-login");
    const t = await loginFrom(a, m, UA);
    keep(t.accessToken);
    keep(t.refreshToken);
    const [e] = await waitFor(`${ofUser(m.user.id)} AND type = AUTH_EVENT_TYPE_LOGIN_SUCCEEDED`, 2);
    expect(e).toMatchObject({
      type: T.LOGIN_SUCCEEDED,
      userId: m.user.id,
      sessionId: sidOf(t.accessToken),
      clientAddress: "127.0.0.1",
      userAgent: UA,
      email: m.email,
    });
    expect(e.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Math.abs(Number(e.time?.seconds) * 1000 - Date.now())).toBeLessThan(30_000);
  });

  it("records LOGIN_FAILED for a wrong password (email as typed), an unknown email, a suspended account and a service account", async () => {
    const m = await member("ev-fail");
    const typed = m.email.toUpperCase();
    const wrong = keep(`wrong-${randomUUID()}`);
    await failure(authOf(a, undefined, { "user-agent": UA }).login({ email: typed, password: wrong }));
    const unknown = uniqueEmail("ev-nobody");
    await failure(authOf(a, undefined, { "user-agent": UA }).login({ email: unknown, password: wrong }));
    const [failed] = await waitFor(`${ofUser(m.user.id)} AND type = AUTH_EVENT_TYPE_LOGIN_FAILED`, 1);
    expect(failed).toMatchObject({ userId: m.user.id, email: typed, sessionId: "", userAgent: UA });
    const nobody = (await waitFor('user_id = "" AND type = AUTH_EVENT_TYPE_LOGIN_FAILED', 1)).filter(
      (e) => e.email === unknown,
    );
    expect(nobody).toHaveLength(1);
    expect(nobody[0]).toMatchObject({ userId: "", clientAddress: "127.0.0.1" });

    const s = await member("ev-suspended");
    await asAdmin().users.updateUser({
      user: { id: s.user.id, state: UserState.SUSPENDED },
      updateMask: { paths: ["state"] },
    });
    expect((await failure(authOf(a).login({ email: s.email, password: s.password }))).code).toBe(Code.PermissionDenied);
    const svcEmail = uniqueEmail("ev-service");
    const svc = await asAdmin().users.createUser({
      user: { email: svcEmail, displayName: "Service", kind: UserKind.SERVICE },
    });
    await failure(authOf(a).login({ email: svcEmail, password: wrong }));
    for (const id of [s.user.id, svc.user?.id ?? ""]) {
      expect(typesOf(await waitFor(`${ofUser(id)} AND type = AUTH_EVENT_TYPE_LOGIN_FAILED`, 1))).toEqual([
        "LOGIN_FAILED",
      ]);
    }
  });

  it("records ACCOUNT_LOCKED at the failure that locks, and LOGIN_FAILED for the logins the lock refuses", async () => {
    const m = await member("ev-lock");
    const wrong = keep(`wrong-${randomUUID()}`);
    for (let i = 0; i < 5; i++) await failure(authOf(a).login({ email: m.email, password: wrong }));
    const refused = await failure(authOf(a).login({ email: m.email, password: m.password }));
    expect(refused.reason).toBe("ACCOUNT_LOCKED");
    // Newest first: the refusal, the lock with the 5th failure, four more failures, the member's first login.
    const events = await waitFor(ofUser(m.user.id), 8);
    expect(typesOf(events)).toEqual([
      "LOGIN_FAILED",
      "ACCOUNT_LOCKED",
      ...Array(5).fill("LOGIN_FAILED"),
      "LOGIN_SUCCEEDED",
    ]);
    expect(events[1]).toMatchObject({ userId: m.user.id, email: m.email });
  });

  it("records ACCOUNT_LOCKED when a 5th wrong current password in ChangePassword locks the email", async () => {
    const m = await member("ev-lock-change");
    for (let i = 0; i < 5; i++) {
      const f = await failure(
        authOf(a, m.token).changePassword({
          currentPassword: keep(`wrong-${i}-${randomUUID()}`),
          newPassword: keep(`n-${randomUUID()}`),
        }),
      );
      expect(f.reason).toBe("INVALID_CREDENTIALS");
    }
    const [locked] = await waitFor(`${ofUser(m.user.id)} AND type = AUTH_EVENT_TYPE_ACCOUNT_LOCKED`, 1);
    expect(locked).toMatchObject({ userId: m.user.id, email: m.email, clientAddress: "127.0.0.1" });
    expect((await failure(authOf(a).login({ email: m.email, password: m.password }))).reason).toBe("ACCOUNT_LOCKED");
  });

  it("records LOGOUT, TOKEN_REFRESHED and REFRESH_REUSE_DETECTED with their session", async () => {
    const m = await member("ev-refresh");
    const t = await loginFrom(a, m, UA);
    const sid = sidOf(t.accessToken);
    const next = await authOf(a, undefined, { "user-agent": UA }).refreshToken({ refreshToken: keep(t.refreshToken) });
    keep(next.tokens?.refreshToken ?? "");
    keep(next.tokens?.accessToken ?? "");
    await failure(authOf(a).refreshToken({ refreshToken: t.refreshToken }));
    const other = await loginFrom(a, m, UA);
    keep(other.accessToken);
    await authOf(a, undefined, { "user-agent": UA }).logout({ refreshToken: keep(other.refreshToken) });
    // A second Logout of the same session records nothing.
    await authOf(a).logout({ refreshToken: other.refreshToken });
    const events = await waitFor(ofUser(m.user.id), 6);
    expect(typesOf(events)).toEqual([
      "LOGOUT",
      "LOGIN_SUCCEEDED",
      "REFRESH_REUSE_DETECTED",
      "TOKEN_REFRESHED",
      "LOGIN_SUCCEEDED",
      "LOGIN_SUCCEEDED",
    ]);
    expect(events.slice(0, 4).map((e) => e.sessionId)).toEqual([
      sidOf(other.accessToken),
      sidOf(other.accessToken),
      sid,
      sid,
    ]);
    expect(events[3].userAgent).toBe(UA);
  });

  it("records PASSWORD_CHANGED (ChangePassword, SetPassword) and PASSWORD_RESET", async () => {
    const m = await member("ev-password");
    const newPassword = keep(`new-${randomUUID()}`);
    const changed = await authOf(a, m.token, { "user-agent": UA }).changePassword({
      currentPassword: m.password,
      newPassword,
    });
    keep(changed.tokens?.accessToken ?? "");
    keep(changed.tokens?.refreshToken ?? "");
    await asAdmin().users.setPassword({ userId: m.user.id, password: keep(`set-${randomUUID()}`) });
    const { code } = await asAdmin().users.createPasswordResetCode({ userId: m.user.id });
    keep(code);
    await authOf(a).resetPassword({ email: m.email, code, newPassword: keep(`reset-${randomUUID()}`) });
    const events = await waitFor(`${ofUser(m.user.id)} AND NOT type = AUTH_EVENT_TYPE_LOGIN_SUCCEEDED`, 3);
    expect(typesOf(events)).toEqual(["PASSWORD_RESET", "PASSWORD_CHANGED", "PASSWORD_CHANGED"]);
    expect(events[2]).toMatchObject({ sessionId: sidOf(m.token), userAgent: UA });
    expect(events[0].email).toBe(m.email);
  });

  it("records SESSION_REVOKED once per session revoked, and API_KEY_CREATED / API_KEY_DELETED", async () => {
    const m = await member("ev-revoke");
    const s1 = await loginFrom(a, m, UA);
    const s2 = await loginFrom(a, m, UA);
    keep(s1.refreshToken);
    keep(s2.refreshToken);
    await authOf(a, m.token).revokeSession({ sessionId: sidOf(s1.accessToken) });
    // An idempotent retry revokes nothing more.
    await authOf(a, m.token).revokeSession({ sessionId: sidOf(s1.accessToken) });
    const { revokedCount } = await asAdmin().users.revokeUserSessions({ userId: m.user.id });
    expect(revokedCount).toBe(2);
    const key = await asAdmin().users.createApiKey({ userId: m.user.id, displayName: "events" });
    keep(key.secret);
    await asAdmin().users.deleteApiKey({ userId: m.user.id, apiKeyId: key.apiKey?.id ?? "" });
    const revoked = await waitFor(`${ofUser(m.user.id)} AND type = AUTH_EVENT_TYPE_SESSION_REVOKED`, 3);
    expect(revoked.map((e) => e.sessionId).sort()).toEqual(
      [sidOf(s1.accessToken), sidOf(s2.accessToken), sidOf(m.token)].sort(),
    );
    const keys = await waitFor(
      `${ofUser(m.user.id)} AND (type = AUTH_EVENT_TYPE_API_KEY_CREATED OR type = AUTH_EVENT_TYPE_API_KEY_DELETED)`,
      2,
    );
    expect(typesOf(keys)).toEqual(["API_KEY_DELETED", "API_KEY_CREATED"]);
  });
});

describe("ListAuthEvents", () => {
  it("filters on type, time and user_id with AND, OR and NOT", async () => {
    const m = await member("ev-filter");
    await failure(authOf(a).login({ email: m.email, password: keep(`wrong-${randomUUID()}`) }));
    const all = await waitFor(ofUser(m.user.id), 2);
    expect(typesOf(all)).toEqual(["LOGIN_FAILED", "LOGIN_SUCCEEDED"]);
    const first = all[1].time;
    const iso = new Date(Number(first?.seconds) * 1000 + Math.floor((first?.nanos ?? 0) / 1e6)).toISOString();
    expect(await listAll(`${ofUser(m.user.id)} AND time > "${iso}"`)).toEqual([all[0]]);
    expect(await listAll(`${ofUser(m.user.id)} AND time <= "${iso}"`)).toEqual([all[1]]);
    expect(await listAll(`${ofUser(m.user.id)} AND -type = AUTH_EVENT_TYPE_LOGIN_FAILED`)).toEqual([all[1]]);
    expect(
      await listAll(`${ofUser(m.user.id)} (type = "AUTH_EVENT_TYPE_LOGIN_FAILED" OR type = AUTH_EVENT_TYPE_LOGOUT)`),
    ).toEqual([all[0]]);
    // != includes the events without a user.
    const others = await listAll(`user_id != "${m.user.id}"`);
    expect(others.some((e) => e.userId === m.user.id)).toBe(false);
    expect(others.some((e) => e.userId === "")).toBe(true);
  });

  it("pages newest first with tokens bound to the filter", async () => {
    const m = await member("ev-page");
    for (let i = 0; i < 4; i++)
      await failure(authOf(a).login({ email: m.email, password: keep(`w-${i}-${randomUUID()}`) }));
    const all = await waitFor(ofUser(m.user.id), 5);
    expect(all).toHaveLength(5);
    const times = all.map((e) => Number(e.time?.seconds) * 1e9 + (e.time?.nanos ?? 0));
    expect([...times].sort((x, y) => y - x)).toEqual(times);
    const c = asAdmin().auth;
    const paged: AuthEvent[] = [];
    let pageToken = "";
    const tokens: string[] = [];
    do {
      const res = await c.listAuthEvents({ filter: ofUser(m.user.id), pageSize: 2, pageToken });
      expect(res.events.length).toBeLessThanOrEqual(2);
      paged.push(...res.events);
      pageToken = res.nextPageToken;
      if (pageToken) tokens.push(pageToken);
    } while (pageToken);
    expect(paged).toEqual(all);
    expect(tokens).toHaveLength(2);
    // The same filter spelled differently takes the token; another filter does not.
    const respelled = await c.listAuthEvents({ filter: `(${ofUser(m.user.id)})`, pageSize: 2, pageToken: tokens[0] });
    expect(respelled.events).toEqual(all.slice(2, 4));
    for (const [filter, token] of [
      ["", tokens[0]],
      [ofUser(m.user.id), `${tokens[0].slice(0, -2)}AA`],
      [ofUser(m.user.id), "not a token"],
    ]) {
      const f = await failure(c.listAuthEvents({ filter, pageSize: 2, pageToken: token }));
      expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_PAGE_TOKEN"]);
    }
  });

  it("answers INVALID_FILTER for a filter outside its fields and values", async () => {
    for (const filter of [
      'email = "x@example.com"',
      "type = LOGIN_FAILED",
      "type = AUTH_EVENT_TYPE_UNSPECIFIED",
      "type > AUTH_EVENT_TYPE_LOGOUT",
      'time > "yesterday"',
      "time > 2026",
      'time : "2026-01-01T00:00:00Z"',
      'user_id = "not-a-uuid"',
      'user_id > "00000000-0000-0000-0000-000000000000"',
      "type = AUTH_EVENT_TYPE_LOGOUT AND",
      "(type = AUTH_EVENT_TYPE_LOGOUT",
    ]) {
      const f = await failure(asAdmin().auth.listAuthEvents({ filter }));
      expect([filter, f.code, f.reason]).toEqual([filter, Code.InvalidArgument, "INVALID_FILTER"]);
    }
  });

  it("is refused to a non-admin (PERMISSION_DENIED) and to an anonymous caller", async () => {
    const m = await member("ev-denied");
    const f = await failure(authOf(a, m.token).listAuthEvents({}));
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
    expect((await failure(authOf(a).listAuthEvents({}))).code).toBe(Code.Unauthenticated);
  });
});

describe("safety and shutdown", () => {
  it("writes the events still buffered when a server closes (TRUST_PROXY address included)", async () => {
    // Flushes only every minute: what is listed afterwards was written by the shutdown.
    const b = await startTestServer({
      DATABASE_URL: a.databaseUrl,
      TRUST_PROXY: "true",
      AUTH_EVENTS_FLUSH_INTERVAL: "60s",
    });
    const m = await member("ev-shutdown");
    const headers = { "user-agent": "closing/1", "x-forwarded-for": "203.0.113.9" };
    const logins = await Promise.all(
      [0, 1, 2].map(() => authOf(b, undefined, headers).login({ email: m.email, password: m.password })),
    );
    for (const l of logins) keep(l.tokens?.refreshToken ?? "");
    await sleep(300);
    const rows = await query(a.databaseUrl, "select count(*)::int as n from auth_events where client_address = $1", [
      "203.0.113.9",
    ]);
    expect(rows[0].n).toBe(0);
    await b.close();
    const events = (await listAll(`${ofUser(m.user.id)} AND type = AUTH_EVENT_TYPE_LOGIN_SUCCEEDED`)).filter(
      (e) => e.userAgent === "closing/1",
    );
    expect(events).toHaveLength(3);
    for (const e of events) expect(e.clientAddress).toBe("203.0.113.9");
    expect(events.map((e) => e.sessionId).sort()).toEqual(logins.map((l) => sidOf(l.tokens?.accessToken ?? "")).sort());
  });

  it("counts what it wrote by type on /metrics, and shows the drop counter at zero", async () => {
    await waitFor("type = AUTH_EVENT_TYPE_LOGIN_SUCCEEDED", 1);
    const samples = parsePrometheusText(await (await fetch(`${a.url}/metrics`)).text());
    expect(samples.get(sampleKey("auth_events_recorded_total", { type: "login_succeeded" }))).toBeGreaterThan(0);
    expect(samples.get(sampleKey("auth_events_recorded_total", { type: "api_key_deleted" }))).toBeGreaterThanOrEqual(0);
    for (const why of ["full", "refused", "closed"]) {
      expect(samples.get(sampleKey("auth_events_dropped_total", { why }))).toBe(0);
    }
    expect(samples.get(sampleKey("auth_events_buffered"))).toBeGreaterThanOrEqual(0);
  });

  it("are pruned past AUDIT_RETENTION", async () => {
    const c = await startTestServer({ DATABASE_URL: a.databaseUrl, PRUNE_INTERVAL: "300ms", AUDIT_RETENTION: "30d" });
    try {
      const ids = [randomUUID(), randomUUID()];
      await query(
        a.databaseUrl,
        `insert into auth_events (id, type, time) values
           ($1, 'LOGOUT', now() - interval '31 days'), ($2, 'LOGOUT', now() - interval '29 days')`,
        ids,
      );
      const left = async () =>
        (await query<{ id: string }>(a.databaseUrl, "select id from auth_events where id = any($1)", [ids])).map(
          (r) => r.id,
        );
      const deadline = Date.now() + 10_000;
      while ((await left()).length > 1 && Date.now() < deadline) await sleep(100);
      expect(await left()).toEqual([ids[1]]);
    } finally {
      await c.close();
    }
  });

  it("holds no password, token, code or secret, in the table or in the logs", async () => {
    await asAdmin().auth.listAuthEvents({});
    await sleep(400);
    const rows = await query(
      a.databaseUrl,
      "select coalesce(string_agg(e::text, E'\\n'), '') as text from auth_events e",
    );
    const text = String(rows[0].text);
    expect(text.length).toBeGreaterThan(0);
    const logs = a.logText();
    for (const s of secrets.filter((x) => x.length >= 8)) {
      expect(text.includes(s), "a secret in auth_events").toBe(false);
      expect(logs.includes(s), "a secret in the logs").toBe(false);
    }
  });
});
