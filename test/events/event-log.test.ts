/**
 * The one order of outbound events (src/events/event-log.ts, docs/adr/0024-event-delivery.md): user changes
 * and auth events numbered from one sequence by one sequencer, read after a seq in that order, each once,
 * with their wire type names and proto JSON, filtered by type, and `readTo` letting a reader skip what it
 * does not want without reading it again.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENT_TYPES, newestSeq, readEvents } from "../../src/events/event-log.ts";
import { adminToken, createMember, uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let a: TestServer;
let pool: pg.Pool;
let admin: string;

beforeAll(async () => {
  a = await startTestServer({ AUTH_EVENTS_FLUSH_INTERVAL: "20ms" });
  pool = new pg.Pool({ connectionString: a.databaseUrl, max: 2 });
  admin = await adminToken(a.url);
});
afterAll(async () => {
  await pool?.end();
  await a?.close();
});

/** Reads every event after `after` in pages of `limit`, as a webhook or the NATS publisher does. */
async function readAll(after: number, limit: number, types?: string[]) {
  const out: Awaited<ReturnType<typeof readEvents>>["events"] = [];
  let cursor = after;
  for (;;) {
    const page = await readEvents(pool, { after: cursor, limit, types });
    out.push(...page.events);
    expect(page.readTo).toBeGreaterThanOrEqual(cursor);
    if (page.readTo === cursor) return { events: out, cursor };
    cursor = page.readTo;
  }
}

/** Polls until `n` events after `after` are numbered. */
async function waitForEvents(after: number, n: number) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { events } = await readAll(after, 1000);
    if (events.length >= n || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("the event log", () => {
  it("numbers user changes and auth events in one order, each once, with wire types and proto JSON", async () => {
    const start = await newestSeq(pool);
    const m = await createMember(a.url, admin, { prefix: "evlog" }); // user.created + auth.login_succeeded
    await failure(clients(a.url, "grpc").auth.login({ email: m.user.email, password: "wrong-password-1" }));
    // An auth event is committed (and so numbered) with its recorder's next batch: the order of events is the
    // order they were committed, so the test lets each batch land before the next step.
    await waitForEvents(start, 3);
    const users = clients(a.url, "grpc", () => admin).users;
    await users.updateUser({
      user: { id: m.user.id, displayName: "Renamed" },
      updateMask: { paths: ["display_name"] },
    });
    await users.deleteUser({ userId: m.user.id });

    const events = (await waitForEvents(start, 5)).filter(
      (e) => (e.data as { user?: { id?: string } }).user?.id === m.user.id || e.data.userId === m.user.id,
    );
    expect(events.map((e) => e.type)).toEqual([
      "user.created",
      "auth.login_succeeded",
      "auth.login_failed",
      "user.updated",
      "user.deleted",
    ]);
    const seqs = events.map((e) => e.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    // A change's id is its row id in decimal, an auth event's its UUIDv7: the same ids the API lists.
    const [created, login] = events;
    expect(created.id).toMatch(/^\d+$/);
    expect(created.data).toMatchObject({
      eventId: created.id,
      type: "WATCH_EVENT_TYPE_CREATED",
      user: { email: m.user.email },
    });
    expect(login.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(login.data).toMatchObject({ id: login.id, type: "AUTH_EVENT_TYPE_LOGIN_SUCCEEDED", userId: m.user.id });
    // Nothing secret rides along: no hash, no token.
    expect(JSON.stringify(events)).not.toMatch(/argon2|\$2[aby]\$|passwordHash|tokensValidAfter/i);
    expect(EVENT_TYPES).toEqual(expect.arrayContaining(events.map((e) => e.type)));
  });

  it("pages exactly: small pages read the same events as one big read", async () => {
    const start = await newestSeq(pool);
    for (let i = 0; i < 7; i++) {
      await clients(a.url, "grpc", () => admin).users.createUser({
        user: { email: uniqueEmail("evpage"), displayName: `P ${i}` },
      });
    }
    await clients(a.url, "grpc")
      .auth.login({ email: "nobody@example.com", password: "whatever-pass-1" })
      .catch(() => {});
    const all = await waitForEvents(start, 8);
    const paged = await readAll(start, 3);
    expect(paged.events.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  });

  it("filters by type and moves readTo past events of other types", async () => {
    const start = await newestSeq(pool);
    await clients(a.url, "grpc", () => admin).users.createUser({
      user: { email: uniqueEmail("evtype"), displayName: "T" },
    });
    await failure(clients(a.url, "grpc").auth.login({ email: "nobody2@example.com", password: "whatever-pass-1" }));
    await waitForEvents(start, 2);
    const end = await newestSeq(pool);
    const onlyFailures = await readEvents(pool, { after: start, limit: 100, types: ["auth.login_failed"] });
    expect(onlyFailures.events.map((e) => e.type)).toEqual(["auth.login_failed"]);
    expect(onlyFailures.readTo).toBe(end);
    const none = await readEvents(pool, { after: start, limit: 100, types: ["user.undeleted"] });
    expect(none).toEqual({ events: [], readTo: end });
  });
});
