/**
 * WatchUsers over the wire against the change log (user_changes, in seq order, is the reference for
 * "commit order"): the initial snapshot and SYNCED, every event type with the user after the change,
 * filters (users leaving and entering), 8 concurrent writers x 250 updates with several watchers, resume
 * after a disconnect, expired resume tokens, heartbeats, the end of a stream when the caller's token
 * expires or is revoked, two server processes on one database, every protocol, and shutdown.
 */
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, type User, type UserSchema, UserState } from "../../gen/user/v1/user_pb.js";
import { WatchEventType, type WatchUsersResponse } from "../../gen/user/v1/user_service_pb.js";
import { pruneChanges } from "../../src/changes/change-pruner.ts";
import { clients, type TransportName } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import {
  eventKey,
  lastSeq,
  loggedChanges,
  loginToken,
  sleep,
  until,
  usersAs,
  type Watcher,
  watch,
  watchGrpcJs,
} from "./support.ts";

const T = WatchEventType;

let main: TestServer;
let token = "";

beforeAll(async () => {
  // Commits need not wait for the disk here: appends are serialised until commit, so with an fsync per
  // commit the 2,000 writes below would mostly measure the disk.
  const databaseUrl = await createTestDatabase();
  await query(databaseUrl, `alter database ${new URL(databaseUrl).pathname.slice(1)} set synchronous_commit = off`);
  main = await startTestServer({ DATABASE_URL: databaseUrl, WATCH_HEARTBEAT: "500ms" });
  token = await loginToken(main.url);
});
afterAll(() => main?.close());

const admin = (transport: TransportName = "grpc", server = main) => usersAs(server, token, transport);

/** A resume token for the current end of the log (the SYNCED marker of a watch that matches nobody). */
async function here(server = main, tok = token): Promise<string> {
  const w = watch(server, tok, "grpc", { sendInitial: true, filter: "labels.matches-nobody:*" });
  await w.synced();
  await w.stop();
  return w.events.find((e) => e.type === T.SYNCED)?.resumeToken ?? "";
}

async function createUser(
  labels: Record<string, string>,
  extra: MessageInitShape<typeof UserSchema> = {},
  server = main,
): Promise<User> {
  const res = await admin("grpc", server).createUser({
    user: { email: `${randomUUID().slice(0, 8)}@example.com`, displayName: "Watched", labels, ...extra },
  });
  if (!res.user) throw new Error("no user");
  return res.user;
}

async function rename(id: string, displayName: string, server = main, tok = token): Promise<User> {
  const res = await usersAs(server, tok).updateUser({
    user: { id, displayName },
    updateMask: { paths: ["display_name"] },
  });
  if (!res.user) throw new Error("no user");
  return res.user;
}

/** `writers` concurrent clients, each making `updates` UpdateUser calls over the given users. */
async function hammer(ids: string[], writers: number, updates: number, tag: string, servers: TestServer[] = [main]) {
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const server = servers[w % servers.length];
      const c = usersAs(server, token, "grpc");
      for (let i = 0; i < updates; i++) {
        await c.updateUser({
          user: { id: ids[(w + i) % ids.length], displayName: `${tag} w${w} i${i}` },
          updateMask: { paths: ["display_name"] },
        });
      }
    }),
  );
}

/**
 * The watcher's change events once it holds `n` of them (and a little longer, so that any extra would
 * show), or once nothing has arrived for 3 s: a watcher that lost events fails on the comparison that
 * follows, with a diff, rather than on a timeout.
 */
async function settle(w: Watcher, n: number, timeoutMs = 20_000): Promise<string[]> {
  let count = -1;
  let since = Date.now();
  await until(
    () => {
      const now = w.live().length;
      if (now !== count) [count, since] = [now, Date.now()];
      return now >= n || w.ended || Date.now() - since > 3000;
    },
    `${n} live events`,
    timeoutMs,
  );
  await sleep(300);
  return w.live().map(eventKey);
}

describe("snapshot and events", () => {
  it("send_initial: every matching user once as INITIAL, then SYNCED, then only changes", async () => {
    await query(
      main.databaseUrl,
      `insert into users (id, email, display_name, role, state, labels, version, create_time, update_time, delete_time)
       select gen_random_uuid(), 'init' || i || '@example.com', 'Init ' || i, 'user',
              case when i % 100 = 0 then 'deleted' else 'active' end, '{"suite":"init"}', 1, now(), now(),
              case when i % 100 = 0 then now() end
       from generate_series(1, 1234) i; analyze users`,
    );
    const viaRpc = await createUser({ suite: "init" });
    const w = watch(main, token, "grpc", { sendInitial: true, filter: 'labels.suite = "init"' });
    await w.synced();
    const synced = w.events.findIndex((e) => e.type === T.SYNCED);
    const initial = w.events.slice(0, synced);
    expect(initial.every((e) => e.type === T.INITIAL)).toBe(true);
    const expected = await query<{ id: string }>(
      main.databaseUrl,
      "select id::text from users where labels->>'suite' = 'init' and delete_time is null",
    );
    expect(initial.map((e) => e.user?.id).sort()).toEqual(expected.map((r) => r.id).sort());
    expect(initial.length).toBe(1234 - 12 + 1);
    expect(initial.find((e) => e.user?.id === viaRpc.id)?.user).toEqual(viaRpc);
    expect(w.events[synced].user).toBeUndefined();
    expect(w.events[synced].resumeToken).not.toBe("");

    const later = await createUser({ suite: "init" });
    const [created] = await w.liveCount(1);
    expect(created.type).toBe(T.CREATED);
    expect(created.user).toEqual(later);
    await sleep(200);
    expect(w.live().length).toBe(1);
    await w.stop();
  });

  it("CREATED, UPDATED, DELETED, UNDELETED carry the user after the change, in order", async () => {
    const w = watch(main, token, "connect-h2", { sendInitial: true, filter: 'labels.suite = "types"' });
    await w.synced();
    const password = `pw-${randomUUID()}`;
    const c = admin();
    const created = (
      await c.createUser({
        user: {
          email: `types-${randomUUID().slice(0, 8)}@example.com`,
          displayName: "Types",
          labels: { suite: "types" },
        },
        password,
      })
    ).user as User;
    const id = created.id;
    const renamed = (
      await c.updateUser({ user: { id, displayName: "Renamed" }, updateMask: { paths: ["display_name"] } })
    ).user;
    const suspended = (
      await c.updateUser({ user: { id, state: UserState.SUSPENDED }, updateMask: { paths: ["state"] } })
    ).user;
    const active = (await c.updateUser({ user: { id, state: UserState.ACTIVE }, updateMask: { paths: ["state"] } }))
      .user;
    const own = await loginToken(main.url, created.email, password);
    await clients(main.url, "grpc", () => own).auth.changePassword({
      currentPassword: password,
      newPassword: `new-${password}`,
    });
    const afterPassword = (await c.getUser({ userId: id })).user;
    const deleted = (await c.deleteUser({ userId: id })).user;
    const undeleted = (await c.undeleteUser({ userId: id })).user;

    const events = await w.liveCount(7);
    expect(events.map((e) => T[e.type])).toEqual([
      "CREATED",
      "UPDATED",
      "UPDATED",
      "UPDATED",
      "UPDATED",
      "DELETED",
      "UNDELETED",
    ]);
    expect(events.map((e) => e.user)).toEqual([created, renamed, suspended, active, afterPassword, deleted, undeleted]);
    expect(events[2].user?.state).toBe(UserState.SUSPENDED);
    expect(events[5].user?.state).toBe(UserState.DELETED);
    expect(events[5].user?.deleteTime).toBeDefined();
    expect(events[6].user?.state).toBe(UserState.ACTIVE);
    expect(new Set(events.map((e) => e.user?.etag)).size).toBe(7);
    for (const e of events) {
      expect(e.resumeToken).not.toBe("");
      expect(Math.abs(Number(e.eventTime?.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
    }
    expect(new Set(events.map((e) => e.resumeToken)).size).toBe(7);
    // Exactly the log's changes for this user, in its order.
    const logged = (await loggedChanges(main.databaseUrl, "0", `user_id = '${id}'`)).map((l) => l.key);
    expect(events.map(eventKey)).toEqual(logged);
    await sleep(200);
    expect(w.live().length).toBe(7);
    await w.stop();
  });

  it("a filter: only matching changes, and a user leaving (or entering) the filter is seen", async () => {
    const f = watch(main, token, "grpc", { sendInitial: true, filter: 'labels.team = "core"' });
    await f.synced();
    const core = await createUser({ team: "core" });
    const edge = await createUser({ team: "edge" });
    const c = admin();
    await rename(core.id, "core renamed");
    const left = (
      await c.updateUser({ user: { id: core.id, labels: { team: "edge" } }, updateMask: { paths: ["labels"] } })
    ).user;
    await rename(core.id, "gone, not seen");
    await rename(edge.id, "not seen");
    const entered = (
      await c.updateUser({ user: { id: edge.id, labels: { team: "core" } }, updateMask: { paths: ["labels"] } })
    ).user;
    const deleted = (await c.deleteUser({ userId: edge.id })).user;
    await createUser({ team: "edge" });

    const events = await f.liveCount(5);
    await sleep(300);
    expect(f.live().map((e) => [T[e.type], e.user?.id])).toEqual([
      ["CREATED", core.id],
      ["UPDATED", core.id],
      ["UPDATED", core.id],
      ["UPDATED", edge.id],
      ["DELETED", edge.id],
    ]);
    expect(events[2].user).toEqual(left);
    expect(events[2].user?.labels.team).toBe("edge");
    expect(events[3].user).toEqual(entered);
    expect(events[4].user).toEqual(deleted);
    await f.stop();
  });

  it("the in-memory filter agrees with ListUsers' SQL filter", async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const filters = [
      'email = "MIXED.case@example.COM"',
      'email : "EXAMPLE.ORG"',
      'email < "M"',
      'email >= "mixed.case@example.com"',
      'display_name = "alpha"',
      'display_name < "a"',
      'display_name > "\uFFFD"',
      'display_name <= "\uFFFD"',
      'display_name : "%"',
      'display_name : "😀"',
      'labels.k = "v1"',
      'labels.k != "v1"',
      "labels.k:*",
      'labels.k >= "v"',
      'labels.k : "_"',
      "role = ROLE_ADMIN AND NOT labels.other:*",
      'role = ROLE_USER OR labels.other = "x"',
      'labels.k = "v1" OR labels.k = "v2" role = ROLE_USER',
      `create_time >= "${since}" AND create_time <= "2999-01-01T00:00:00Z"`,
      'update_time < "2000-01-01T00:00:00+02:00"',
      "state = USER_STATE_ACTIVE",
      "state != USER_STATE_ACTIVE",
      '-labels.k = "v2"',
      'NOT (email : "mixed" OR display_name : "a")',
    ].map((f) => `labels.agree:* AND (${f})`);
    const watchers = filters.map((filter) => watch(main, token, "grpc", { sendInitial: true, filter }));
    await Promise.all(watchers.map((w) => w.synced()));
    const tag = randomUUID().slice(0, 6);
    const made: { email: string; displayName: string; labels: Record<string, string>; role?: Role }[] = [
      { email: `Mixed.Case@Example.com`, displayName: "alpha", labels: { k: "v1" } },
      { email: `lower-${tag}@example.org`, displayName: "Beta", labels: { k: "v2", other: "x" }, role: Role.ADMIN },
      { email: `zed-${tag}@example.com`, displayName: "😀 smile", labels: { k: "A_%" } },
      { email: `amy-${tag}@EXAMPLE.org`, displayName: "\uFFFD replacement", labels: {}, role: Role.ADMIN },
      { email: `omega-${tag}@example.net`, displayName: "100% sure", labels: { k: "w", other: "y" } },
      { email: `plain-${tag}@example.com`, displayName: "ÿ", labels: { k: "v10" } },
    ];
    const ids: string[] = [];
    for (const m of made)
      ids.push(
        (
          await createUser(
            { agree: tag, ...m.labels },
            { email: m.email, displayName: m.displayName, role: m.role ?? Role.USER },
          )
        ).id,
      );
    const listed = await Promise.all(
      filters.map(async (filter) =>
        (await admin().listUsers({ filter, pageSize: 100 })).users.map((u) => u.id).filter((id) => ids.includes(id)),
      ),
    );
    // Every watcher has had time to see what it should (a missing event then shows in the diff below).
    await until(() => watchers.every((w, i) => w.live().length >= listed[i].length), "the events", 5000).catch(
      () => {},
    );
    await sleep(200);
    for (const [i, filter] of filters.entries()) {
      const watched = watchers[i].live().map((e) => e.user?.id ?? "");
      expect(watched.sort(), filter).toEqual(listed[i].sort());
    }
    expect(listed.filter((l) => l.length > 0).length).toBeGreaterThan(filters.length / 2);
    await Promise.all(watchers.map((w) => w.stop()));
  });

  it("rejects a bad filter, a bad resume token and a caller who is not an admin", async () => {
    const bad = await watch(main, token, "grpc", { filter: "nope = 1" }).ends();
    expect(bad?.code).toBe(Code.InvalidArgument);
    expect(bad?.reason).toBe("INVALID_FILTER");
    const badToken = await watch(main, token, "connect-h1", { resumeToken: "not-a-token" }).ends();
    expect(badToken?.code).toBe(Code.InvalidArgument);
    const password = `pw-${randomUUID()}`;
    const member = (
      await admin().createUser({
        user: { email: `m-${randomUUID().slice(0, 8)}@example.com`, displayName: "M" },
        password,
      })
    ).user as User;
    const memberToken = await loginToken(main.url, member.email, password);
    const denied = await watch(main, memberToken, "grpc", { sendInitial: true }).ends();
    expect(denied?.code).toBe(Code.PermissionDenied);
    const anonymous = await watch(main, "", "grpc-web-h1", {}).ends();
    expect(anonymous?.code).toBe(Code.Unauthenticated);
  });
});

describe("concurrency and resume", () => {
  it("8 writers x 250 updates, 3 watchers (and one that joins mid-way): every event once, in commit order", async () => {
    const targets = await Promise.all(Array.from({ length: 6 }, () => createUser({ suite: "conc" })));
    const ids = targets.map((u) => u.id);
    const start = await here();
    const baseline = await lastSeq(main.databaseUrl);
    const before = new Map(targets.map((u) => [u.id, u.etag]));
    const watchers = [
      watchGrpcJs(main, token, { resumeToken: start }),
      watch(main, token, "connect-json-h1", { resumeToken: start }),
      watch(main, token, "grpc-web-h2", { resumeToken: start }),
    ];
    const writing = hammer(ids, 8, 250, "conc");
    // A fourth watcher takes its snapshot while the writers are busy.
    await until(
      async () => Number(await lastSeq(main.databaseUrl)) - Number(baseline) > 400,
      "400 updates",
      30_000,
      50,
    );
    const late = watch(main, token, "connect-h1", { sendInitial: true, filter: 'labels.suite = "conc"' });
    await writing;
    const expected = (await loggedChanges(main.databaseUrl, baseline)).map((l) => l.key);
    expect(expected.length).toBe(2000);
    for (const w of watchers) expect(await settle(w, 2000, 30_000)).toEqual(expected);

    // The late watcher: its snapshot plus its events are exactly the log from some point on.
    await late.synced();
    const last = expected[expected.length - 1];
    await until(() => late.live().map(eventKey).includes(last), "the late watcher to catch up", 20_000).catch(() => {});
    await sleep(300);
    const lateEvents = late.live().map(eventKey);
    const k = expected.length - lateEvents.length;
    expect(k).toBeGreaterThan(0);
    expect(lateEvents).toEqual(expected.slice(k));
    const etagAt = new Map(before);
    for (const key of expected.slice(0, k)) {
      const [id, etag] = key.split(":");
      etagAt.set(id, etag);
    }
    const initial = late.events.filter((e) => e.type === T.INITIAL);
    expect(new Map(initial.map((e) => [e.user?.id, e.user?.etag]))).toEqual(etagAt);
    await Promise.all([...watchers, late].map((w) => w.stop()));
  }, 120_000);

  it("a watcher that disconnects mid-stream and resumes with its last token misses nothing and sees nothing twice", async () => {
    const targets = await Promise.all(Array.from({ length: 3 }, () => createUser({ suite: "resume" })));
    const start = await here();
    const baseline = await lastSeq(main.databaseUrl);
    const writing = hammer(
      targets.map((u) => u.id),
      3,
      100,
      "resume",
    );
    const seen: WatchUsersResponse[] = [];
    let resumeToken = start;
    for (const transport of ["grpc", "connect-json-h1", "grpc-web-h1"] as const) {
      const w = watch(main, token, transport, { resumeToken });
      await w.liveCount(60, 20_000);
      await w.stop();
      seen.push(...w.changes());
      resumeToken = w.lastToken();
    }
    await writing;
    const expected = (await loggedChanges(main.databaseUrl, baseline)).map((l) => l.key);
    const last = watchGrpcJs(main, token, { resumeToken });
    const rest = expected.length - seen.length;
    seen.push(...(await last.liveCount(rest, 20_000)));
    await sleep(300);
    expect(last.changes().length).toBe(rest);
    await last.stop();
    expect(seen.map(eventKey)).toEqual(expected);
  }, 60_000);
});

describe("change log retention, heartbeats and token expiry", () => {
  let short: TestServer;
  beforeAll(async () => {
    short = await startTestServer({ ACCESS_TOKEN_TTL: "3s", WATCH_HEARTBEAT: "300ms", CHANGE_LOG_RETENTION: "2s" });
  });
  afterAll(() => short?.close());

  // These two run side by side: one mostly sleeps, the other waits for its token to expire.
  it.concurrent("a resume token older than the retained log is OUT_OF_RANGE RESUME_TOKEN_EXPIRED; one at its edge resumes", async () => {
    let tok = await loginToken(short.url);
    const w = watch(short, tok, "grpc", { sendInitial: true, filter: 'labels.suite = "retention"' });
    await w.synced();
    const t0 = w.lastToken();
    const res = await usersAs(short, tok).createUser({
      user: { email: `r-${randomUUID().slice(0, 8)}@example.com`, displayName: "R", labels: { suite: "retention" } },
    });
    const id = res.user?.id ?? "";
    await rename(id, "R2", short, tok);
    const [, second] = await w.liveCount(2);
    const t1 = w.live()[0].resumeToken;
    const t2 = second.resumeToken;
    await w.stop();
    // Those two changes age past CHANGE_LOG_RETENTION (2s); one more is fresh; the pruner runs.
    await sleep(2100);
    tok = await loginToken(short.url);
    const fresh = await rename(id, "R3", short, tok);
    const pool = new pg.Pool({ connectionString: short.databaseUrl, max: 1 });
    try {
      expect(await pruneChanges(pool, 2000)).toBeGreaterThanOrEqual(2);
    } finally {
      await pool.end();
    }
    for (const [transport, resumeToken] of [
      ["grpc", t0],
      ["connect-h1", t1],
      ["grpc-web-h1", t1],
    ] as const) {
      const end = await watch(short, tok, transport, { resumeToken }).ends();
      expect(end?.code, transport).toBe(Code.OutOfRange);
      expect(end?.reason).toBe("RESUME_TOKEN_EXPIRED");
    }
    // Nothing after t2 was pruned: resuming there loses nothing.
    const edge = watch(short, tok, "grpc", { resumeToken: t2, filter: 'labels.suite = "retention"' });
    const [next] = await edge.liveCount(1);
    expect(next.user).toEqual(fresh);
    await edge.stop();
  });

  it.concurrent("ends with UNAUTHENTICATED when the caller's access token expires", async () => {
    const issued = Date.now();
    const tok = await loginToken(short.url);
    const w = watch(short, tok, "grpc", { sendInitial: true, filter: "labels.matches-nobody:*" });
    await w.synced();
    const end = await w.ends(8000);
    const after = Date.now() - issued;
    expect(end?.code).toBe(Code.Unauthenticated);
    expect(end?.reason).toBe("UNAUTHENTICATED");
    expect(after).toBeGreaterThanOrEqual(1900);
    expect(after).toBeLessThan(6000);
    // Heartbeats flowed until then.
    expect(w.events.some((e) => e.type === T.HEARTBEAT)).toBe(true);
  });

  it("sends HEARTBEATs when quiet, carrying a token that resumes exactly after it", async () => {
    const tok = await loginToken(short.url);
    await usersAs(short, tok).createUser({
      user: { email: `hb-${randomUUID().slice(0, 8)}@example.com`, displayName: "Before" },
    });
    // A filtered watcher: changes to other users still move its heartbeat token forward.
    const w = watch(short, tok, "connect-h1", { filter: 'labels.suite = "heartbeat"' });
    await until(() => w.events.filter((e) => e.type === T.HEARTBEAT).length >= 2, "two heartbeats", 3000);
    const beats = w.events.filter((e) => e.type === T.HEARTBEAT);
    expect(w.changes()).toEqual([]);
    for (const b of beats) {
      expect(b.user).toBeUndefined();
      expect(b.resumeToken).not.toBe("");
      expect(b.eventTime).toBeDefined();
    }
    expect(
      Number(beats[1].eventTime?.seconds) * 1e3 +
        (beats[1].eventTime?.nanos ?? 0) / 1e6 -
        (Number(beats[0].eventTime?.seconds) * 1e3 + (beats[0].eventTime?.nanos ?? 0) / 1e6),
    ).toBeGreaterThanOrEqual(250);
    // A change the filter does not match, then the next heartbeat: its token is past that change.
    const other = await usersAs(short, tok).createUser({
      user: { email: `hb-${randomUUID().slice(0, 8)}@example.com`, displayName: "Other" },
    });
    const seq = await lastSeq(short.databaseUrl);
    // Two heartbeats later the feed has surely brought that change to this process.
    const count = w.events.length;
    await until(() => w.events.length >= count + 2, "two heartbeats after the change", 3000);
    expect(w.changes()).toEqual([]);
    const beat = w.lastToken();
    await w.stop();
    const u = await usersAs(short, tok).createUser({
      user: { email: `hb-${randomUUID().slice(0, 8)}@example.com`, displayName: "After" },
    });
    await rename(u.user?.id ?? "", "After 2", short, tok);
    const resumed = watch(short, tok, "grpc", { resumeToken: beat });
    const events = await resumed.liveCount(2);
    await sleep(400);
    expect(resumed.changes().map(eventKey)).toEqual((await loggedChanges(short.databaseUrl, seq)).map((l) => l.key));
    expect(events.map((e) => e.user?.id)).not.toContain(other.user?.id);
    await resumed.stop();
  });
});

describe("revocation ends the stream", () => {
  it.each([
    [
      "suspended",
      async (id: string) =>
        admin().updateUser({ user: { id, state: UserState.SUSPENDED }, updateMask: { paths: ["state"] } }),
    ],
    [
      "demoted to ROLE_USER",
      async (id: string) => admin().updateUser({ user: { id, role: Role.USER }, updateMask: { paths: ["role"] } }),
    ],
    ["deleted", async (id: string) => admin().deleteUser({ userId: id })],
  ])("ends with UNAUTHENTICATED within a second or two when the caller is %s", async (_what, revoke) => {
    const password = `pw-${randomUUID()}`;
    const other = (
      await admin().createUser({
        user: { email: `adm-${randomUUID().slice(0, 8)}@example.com`, displayName: "Admin 2", role: Role.ADMIN },
        password,
      })
    ).user as User;
    const tok = await loginToken(main.url, other.email, password);
    const w = watch(main, tok, "connect-h2", { sendInitial: true, filter: "labels.matches-nobody:*" });
    await w.synced();
    const t0 = Date.now();
    await revoke(other.id);
    const end = await w.ends(5000);
    expect(end?.code).toBe(Code.Unauthenticated);
    expect(end?.reason).toBe("UNAUTHENTICATED");
    expect(Date.now() - t0).toBeLessThan(2500);
  });

  it("ends with UNAUTHENTICATED when the caller changes their password (older tokens are revoked)", async () => {
    const password = `pw-${randomUUID()}`;
    const other = (
      await admin().createUser({
        user: { email: `adm-${randomUUID().slice(0, 8)}@example.com`, displayName: "Admin 3", role: Role.ADMIN },
        password,
      })
    ).user as User;
    const tok = await loginToken(main.url, other.email, password);
    const w = watchGrpcJs(main, tok, { sendInitial: true, filter: "labels.matches-nobody:*" });
    await w.synced();
    await clients(main.url, "grpc", () => tok).auth.changePassword({
      currentPassword: password,
      newPassword: `new-${password}`,
    });
    const end = await w.ends(5000);
    expect(end?.code).toBe(Code.Unauthenticated);
  });
});

describe("two server processes on one database", () => {
  let replica: TestServer;
  beforeAll(async () => {
    replica = await startTestServer({ DATABASE_URL: main.databaseUrl, WATCH_HEARTBEAT: "500ms" });
  });
  afterAll(() => replica?.close());

  it("a write through one reaches a watcher on the other, in commit order, both ways", async () => {
    const onReplica = watch(replica, token, "grpc", { sendInitial: true, filter: 'labels.suite = "replica"' });
    const onMain = watch(main, token, "connect-h1", { sendInitial: true, filter: 'labels.suite = "replica"' });
    await Promise.all([onReplica.synced(), onMain.synced()]);
    const baseline = await lastSeq(main.databaseUrl);
    const u = await createUser({ suite: "replica" });
    const [created] = await onReplica.liveCount(1, 5000);
    expect(created.type).toBe(T.CREATED);
    expect(created.user).toEqual(u);
    await rename(u.id, "via replica", replica);
    await admin("grpc", replica).deleteUser({ userId: u.id });
    await admin("grpc", main).undeleteUser({ userId: u.id });
    // Concurrent writers through both processes.
    const more = await Promise.all([createUser({ suite: "replica" }), createUser({ suite: "replica" }, {}, replica)]);
    await hammer([u.id, ...more.map((m) => m.id)], 4, 50, "replica", [main, replica]);
    const expected = (await loggedChanges(main.databaseUrl, baseline)).map((l) => l.key);
    expect(expected.length).toBe(4 + 2 + 200);
    expect(await settle(onReplica, expected.length)).toEqual(expected);
    expect(await settle(onMain, expected.length)).toEqual(expected);
    await Promise.all([onReplica.stop(), onMain.stop()]);
  }, 60_000);

  it("a token from one process resumes on the other", async () => {
    const u = await createUser({ suite: "handover" });
    const a = watch(main, token, "grpc", { sendInitial: true, filter: 'labels.suite = "handover"' });
    await a.synced();
    await rename(u.id, "one");
    await rename(u.id, "two", replica);
    await a.liveCount(2);
    await a.stop();
    const baseline = await lastSeq(main.databaseUrl);
    await rename(u.id, "three", replica);
    await rename(u.id, "four");
    const b = watch(replica, token, "grpc-web-h2", { resumeToken: a.lastToken(), filter: 'labels.suite = "handover"' });
    expect(await settle(b, 2)).toEqual((await loggedChanges(main.databaseUrl, baseline)).map((l) => l.key));
    await b.stop();
  });

  it("the change feed reconnects by itself after its database connection drops, and catches up", async () => {
    const u = await createUser({ suite: "reconnect" });
    const watchers = [
      watch(main, token, "grpc", { sendInitial: true, filter: 'labels.suite = "reconnect"' }),
      watch(replica, token, "grpc", { sendInitial: true, filter: 'labels.suite = "reconnect"' }),
    ];
    await Promise.all(watchers.map((w) => w.synced()));
    const baseline = await lastSeq(main.databaseUrl);
    // Every connection that last touched the change log: the LISTEN connections of both processes among them.
    const killed = await query<{ pid: number }>(
      main.databaseUrl,
      `select pid, pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and query ilike '%user_changes%'`,
    );
    expect(killed.length).toBeGreaterThanOrEqual(2);
    // Idle pooled connections that wrote the change log die too. Let their ends close and the pools drop them,
    // so the writes below test the feed's reconnect, not a write racing a connection's death (which answers
    // UNAVAILABLE, as it should).
    const pids = killed.map((k) => k.pid);
    for (let i = 0; i < 50; i++) {
      const left = await query(main.databaseUrl, "select 1 from pg_stat_activity where pid = any($1)", [pids]);
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    // Written while neither process may be listening.
    await rename(u.id, "while down 1");
    await rename(u.id, "while down 2", replica);
    const expected = (await loggedChanges(main.databaseUrl, baseline)).map((l) => l.key);
    for (const w of watchers) expect(await settle(w, 2, 10_000)).toEqual(expected);
    for (const s of [main, replica]) expect(s.logText()).toContain("change feed reconnected");
    // And live delivery works again.
    await rename(u.id, "back up");
    for (const w of watchers) await w.liveCount(3, 5000);
    await Promise.all(watchers.map((w) => w.stop()));
  });
});

describe("protocols and shutdown", () => {
  it("works over gRPC (connect-node and grpc-js), Connect (binary and JSON, HTTP/1.1 and HTTP/2) and gRPC-web", async () => {
    const kinds: TransportName[] = [
      "grpc",
      "connect-h1",
      "connect-json-h1",
      "connect-h2",
      "grpc-web-h1",
      "grpc-web-h2",
    ];
    const names = [...kinds, "grpc-js"];
    const existing = await createUser({ suite: "protocols" });
    const watchers = names.map((n) =>
      n === "grpc-js"
        ? watchGrpcJs(main, token, { sendInitial: true, filter: 'labels.suite = "protocols"' })
        : watch(main, token, n as TransportName, { sendInitial: true, filter: 'labels.suite = "protocols"' }),
    );
    await Promise.all(watchers.map((w) => w.synced()));
    const u = await createUser({ suite: "protocols" });
    for (const [i, w] of watchers.entries()) {
      const [e] = await w.liveCount(1);
      expect(
        w.events.filter((x) => x.type !== T.HEARTBEAT).map((x) => [T[x.type], x.user?.id]),
        names[i],
      ).toEqual([
        ["INITIAL", existing.id],
        ["SYNCED", undefined],
        ["CREATED", u.id],
      ]);
      expect(e.user, names[i]).toEqual(u);
    }
    await Promise.all(watchers.map((w) => w.stop()));
  });

  it("shutting the server down ends open watches with UNAVAILABLE after SHUTDOWN_GRACE", async () => {
    const doomed = await startTestServer({ SHUTDOWN_GRACE: "300ms" });
    const tok = await loginToken(doomed.url);
    const watchers = [
      watch(doomed, tok, "grpc", { sendInitial: true }),
      watchGrpcJs(doomed, tok, { sendInitial: true }),
      watch(doomed, tok, "connect-h1", { sendInitial: true }),
      watch(doomed, tok, "grpc-web-h2", { sendInitial: true }),
    ];
    await Promise.all(watchers.map((w) => w.synced()));
    const t0 = Date.now();
    const closing = doomed.close();
    const ends = await Promise.all(watchers.map((w) => w.ends(5000)));
    await closing;
    for (const [i, end] of ends.entries()) {
      expect(end?.code, `watcher ${i}`).toBe(Code.Unavailable);
      expect(end?.reason, `watcher ${i}`).toBe("UNAVAILABLE");
    }
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});
