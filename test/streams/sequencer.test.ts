/**
 * The change log's sequencer (docs/adr/0016-sequencer.md): writers commit without waiting for the log's
 * order; seq is assigned after commit, under one lock that only sequencers take. Proved here: a write answers
 * while a sequencer is stuck; a reader following `seq > N` misses nothing and sees nothing twice while many
 * writers and several sequencers race; a WatchUsers snapshot that reflects a committed change not yet
 * numbered does not send it again; the pruner never deletes an unnumbered row; the poll numbers a change
 * whose writer never did.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WatchEventType } from "../../gen/user/v1/user_service_pb.js";
import { pruneChanges } from "../../src/changes/change-pruner.ts";
import { decodeResumePoint } from "../../src/users/watch/resume-token.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { eventKey, loginToken, sleep, until, usersAs, watch } from "./support.ts";

/** The lock every sequencer takes (Migration20261206001600). */
const SEQUENCER_LOCK = 1970496882;

let server: TestServer;
let token = "";

beforeAll(async () => {
  server = await startTestServer({ WATCH_HEARTBEAT: "500ms" });
  token = await loginToken(server.url);
});
afterAll(() => server?.close());

/** Holds the sequencers' lock on a connection of its own until `release()`: nothing gets a seq meanwhile. */
async function holdSequencerLock(url: string): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("begin");
  await c.query("select pg_advisory_xact_lock($1)", [SEQUENCER_LOCK]);
  return {
    async release() {
      await c.query("commit");
      await c.end();
    },
  };
}

/** Rejects after `ms`: a write that waits for the sequencers' lock fails the test instead of hanging it. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)),
  ]);
}

async function createUser(labels: Record<string, string>) {
  const res = await usersAs(server, token).createUser({
    user: { email: `${randomUUID().slice(0, 8)}@example.com`, displayName: "Seq", labels },
  });
  if (!res.user) throw new Error("no user");
  return res.user;
}

const rename = (id: string, displayName: string) =>
  usersAs(server, token).updateUser({ user: { id, displayName }, updateMask: { paths: ["display_name"] } });

const unsequenced = async () =>
  Number(
    (await query<{ n: string }>(server.databaseUrl, "select count(*) as n from user_changes where seq is null"))[0].n,
  );

describe("writes and the change log's order", () => {
  it("a write answers while the log's sequencer is held up; its change is numbered and delivered after", async () => {
    const user = await createUser({ suite: "held" });
    const w = watch(server, token, "grpc", { sendInitial: true, filter: 'labels.suite = "held"' });
    await w.synced();
    const lock = await holdSequencerLock(server.databaseUrl);
    let renamed: Awaited<ReturnType<typeof rename>>;
    try {
      // With the old commit trigger, this commit waited for the lock: the call hung.
      renamed = await within(5000, "UpdateUser with the sequencer held", rename(user.id, "while held"));
      expect(await unsequenced()).toBe(1);
      await sleep(300);
      expect(w.live()).toEqual([]);
    } finally {
      await lock.release();
    }
    const [event] = await w.liveCount(1, 5000);
    expect(event.type).toBe(WatchEventType.UPDATED);
    expect(event.user).toEqual(renamed.user);
    expect(await unsequenced()).toBe(0);
    await w.stop();
  });

  it("a snapshot that reflects a committed change not yet numbered does not send it again", async () => {
    const user = await createUser({ suite: "snap" });
    const lock = await holdSequencerLock(server.databaseUrl);
    let w: ReturnType<typeof watch>;
    let v2: Awaited<ReturnType<typeof rename>>;
    try {
      v2 = await within(5000, "UpdateUser with the sequencer held", rename(user.id, "v2"));
      // The snapshot sees the renamed user; the change has no seq yet, so it will come after the position.
      w = watch(server, token, "grpc", { sendInitial: true, filter: 'labels.suite = "snap"' });
      await w.synced();
      const initial = w.events.filter((e) => e.type === WatchEventType.INITIAL);
      expect(initial.map((e) => e.user)).toEqual([v2.user]);
    } finally {
      await lock.release();
    }
    await until(async () => (await unsequenced()) === 0, "the held change to be numbered");
    await sleep(500);
    expect(w.live().map(eventKey)).toEqual([]);
    // Watches resumed from the snapshot's tokens (SYNCED, INITIAL) skip that change too.
    const synced = w.events.find((e) => e.type === WatchEventType.SYNCED)?.resumeToken ?? "";
    const initial = w.events.find((e) => e.type === WatchEventType.INITIAL)?.resumeToken ?? "";
    const resumed = [synced, initial].map((resumeToken) =>
      watch(server, token, "grpc", { resumeToken, filter: 'labels.suite = "snap"' }),
    );
    await sleep(500);
    const v3 = await rename(user.id, "v3");
    for (const x of [w, ...resumed]) {
      const [next] = await x.liveCount(1, 5000);
      expect(next.user).toEqual(v3.user);
    }
    await sleep(300);
    for (const x of [w, ...resumed]) expect(x.live().map(eventKey)).toEqual([`${user.id}:${v3.user?.etag}:updated`]);
    // Past the skipped change, tokens are plain positions again.
    const next = w.live()[0].resumeToken;
    expect(decodeResumePoint(next)).toEqual({ seq: decodeResumePoint(synced).seq + 2 });
    expect(decodeResumePoint(synced).snapshot).toMatch(/^\d+:\d+:/);
    await Promise.all([w, ...resumed].map((x) => x.stop()));
  });

  it("a resume token whose snapshot part was tampered with is INVALID_ARGUMENT", async () => {
    const tampered = (text: string) => Buffer.from(text).toString("base64url");
    for (const text of [
      "c1.5.",
      "c1.5.9:3:",
      "c1.5.3:9:10",
      "c1.5.3:9:5,4",
      "c1.5.3:9:x",
      "c1.5.0:0:",
      "c1.5.1:2:3:4",
      "c1.5.1:9999999999999999999:",
    ]) {
      const end = await watch(server, token, "grpc", { resumeToken: tampered(text) }).ends();
      expect(end?.code, text).toBe(Code.InvalidArgument);
      expect(end?.reason, text).toBe("INVALID_ARGUMENT");
    }
    const long = await watch(server, token, "grpc", { resumeToken: "A".repeat(40_000) }).ends();
    expect(long?.code).toBe(Code.InvalidArgument);
    // A well-formed one of this server resumes.
    const ok = watch(server, token, "grpc", { resumeToken: tampered("c1.1.3:9:4,5") });
    await sleep(300);
    expect(ok.error).toBeUndefined();
    await ok.stop();
  });

  it("the pruner never deletes a change that has no seq yet, however old", async () => {
    const user = await createUser({ suite: "prune" });
    const lock = await holdSequencerLock(server.databaseUrl);
    const pool = new pg.Pool({ connectionString: server.databaseUrl, max: 1 });
    try {
      await within(5000, "UpdateUser with the sequencer held", rename(user.id, "old"));
      await query(
        server.databaseUrl,
        "update user_changes set change_time = now() - interval '1 hour' where seq is null",
      );
      await pruneChanges(pool, 1000);
      expect(await unsequenced()).toBe(1);
    } finally {
      await lock.release();
      await pool.end();
    }
    await until(async () => (await unsequenced()) === 0, "the held change to be numbered");
  });

  it("a change committed by a writer that never numbered it is numbered by the feed's poll", async () => {
    const user = await createUser({ suite: "orphan" });
    const w = watch(server, token, "grpc", { sendInitial: true, filter: 'labels.suite = "orphan"' });
    await w.synced();
    // A writer of another process that died between its commit and its sequencing: nobody pokes.
    const [row] = await query<{ snapshot: Record<string, unknown> }>(
      server.databaseUrl,
      `with u as (update users set display_name = 'orphaned', version = version + 1, update_time = now()
                  where id = $1 returning *)
       insert into user_changes (user_id, type, snapshot, previous)
       select u.id, 'updated', s.snapshot || jsonb_build_object('displayName', u.display_name, 'version', u.version,
              'updateTime', to_char(u.update_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')), s.snapshot
       from u, (select snapshot from user_changes where user_id = $1 order by id desc limit 1) s
       returning snapshot`,
      [user.id],
    );
    const [event] = await w.liveCount(1, 5000);
    expect(event.type).toBe(WatchEventType.UPDATED);
    expect(event.user?.displayName).toBe("orphaned");
    expect(event.user?.etag).toBe(`W/"${row.snapshot.version}"`);
    await w.stop();
  });
});

describe("the sequencer alone", () => {
  let url = "";
  beforeAll(async () => {
    url = await createTestDatabase();
  });

  it("8 writers, 3 sequencers and a reader following seq > N: every change read once, each user's in order", async () => {
    const users = Array.from({ length: 5 }, () => randomUUID());
    const writes = 8 * 150;
    const clients = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        return c;
      }),
    );
    const [reader, ...rest] = clients;
    const sequencers = rest.slice(0, 3);
    const writers = rest.slice(3);
    let writing = true;
    let sequenced = false;
    const read: { seq: number; id: number; user: string; n: number }[] = [];
    try {
      const readerLoop = (async () => {
        let last = 0;
        for (let quiet = 0; quiet < 3; ) {
          const { rows } = await reader.query<{ seq: string; id: string; user_id: string; n: number }>(
            "select seq, id, user_id, (snapshot->>'n')::int as n from user_changes where seq > $1 order by seq",
            [last],
          );
          for (const r of rows) read.push({ seq: Number(r.seq), id: Number(r.id), user: r.user_id, n: r.n });
          if (rows.length > 0) last = Number(rows[rows.length - 1].seq);
          quiet = !sequenced || rows.length > 0 ? 0 : quiet + 1;
          await sleep(1);
        }
      })();
      const sequencing = sequencers.map(async (c, i) => {
        while (writing) await c.query("select user_changes_sequence($1, 50)", [i !== 0]);
        await c.query("select user_changes_sequence(true, 100000)");
      });
      // Each writer takes one user at a time in turn, under the user row lock as the service's writes do, and
      // holds its transaction open a moment so commits interleave with the sequencers.
      await query(url, "create table seq_users (id uuid primary key, n int not null default 0)");
      await query(url, "insert into seq_users (id) select unnest($1::uuid[])", [users]);
      await Promise.all(
        writers.map(async (c, w) => {
          for (let i = 0; i < writes / writers.length; i++) {
            const user = users[(w + i) % users.length];
            await c.query("begin");
            const { rows } = await c.query<{ n: number }>("update seq_users set n = n + 1 where id = $1 returning n", [
              user,
            ]);
            await c.query(
              "insert into user_changes (user_id, type, snapshot) values ($1, 'updated', jsonb_build_object('n', $2::int))",
              [user, rows[0].n],
            );
            if (i % 3 === 0) await sleep(1);
            await c.query("commit");
          }
        }),
      );
      writing = false;
      await Promise.all(sequencing);
      sequenced = true;
      await readerLoop;
      const all = await query<{ seq: string; id: string }>(url, "select seq, id from user_changes order by seq");
      expect(all.length).toBe(writes);
      expect(read.map((r) => r.id)).toEqual(all.map((r) => Number(r.id)));
      for (const user of users) {
        const ns = read.filter((r) => r.user === user).map((r) => r.n);
        expect(ns).toEqual(Array.from({ length: ns.length }, (_, i) => i + 1));
      }
    } finally {
      writing = false;
      sequenced = true;
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
    }
  }, 60_000);
});
