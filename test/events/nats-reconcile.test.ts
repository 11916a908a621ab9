/**
 * The reconcile on taking the lease (docs/nats.md): a cursor that was never saved, found behind the stream
 * after the duplicate window has passed (so Nats-Msg-Id dedup cannot help), is moved up to the stream's last
 * event instead of publishing again; but a stream whose last event is not this database's (a restore from an
 * older backup, another deployment's stream) does not move it, so none of this database's events is skipped.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { query } from "../helpers/database.ts";
import {
  createUserEventsStream,
  databaseEvents,
  duplicateWindowMs,
  expectStreamMatchesDatabase,
  type NatsServer,
  startNats,
  streamEvents,
} from "../helpers/nats.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let nats: NatsServer;
const servers: TestServer[] = [];

beforeEach(async () => {
  nats = await startNats();
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await nats?.dispose();
});

describe("the reconcile", () => {
  it("moves a cursor found behind the stream up to its last event when the duplicate window cannot help", async () => {
    await createUserEventsStream(nats.url, 100);
    const a = await startTestServer({ NATS_URL: nats.url });
    servers.push(a);
    const admin = await adminToken(a.url);
    for (let i = 0; i < 5; i++) await createPlainUser(a.url, admin, "before");
    await expectStreamMatchesDatabase(nats.url, a.databaseUrl);
    await servers.pop()?.close();

    // As if every ack had come but no cursor save had: the cursor back at the start, and the window past.
    await query(a.databaseUrl, "update event_publishers set cursor_seq = 0, cursor_time = null where name = 'nats'");
    await new Promise((done) => setTimeout(done, 300));
    const b = await startTestServer({ DATABASE_URL: a.databaseUrl, NATS_URL: nats.url });
    servers.push(b);
    await createPlainUser(b.url, await adminToken(b.url), "after");
    await expectStreamMatchesDatabase(nats.url, b.databaseUrl);
    expect(b.logs.some((l) => l.msg === "NATS cursor moved up to the last event in the stream")).toBe(true);
    // The operator's stream is left as it was.
    expect(await duplicateWindowMs(nats.url)).toBe(100);
  });

  it("does not take a stream ahead with other events (a restored database) for its own: nothing skipped", async () => {
    // The stream holds another database's events, with the seqs (and change ids) this database's events have
    // too; the duplicate window is made short so that the ids do not clash in it.
    await createUserEventsStream(nats.url, 100);
    const other = await startTestServer({ NATS_URL: nats.url });
    servers.push(other);
    const otherAdmin = await adminToken(other.url);
    for (let i = 0; i < 5; i++) await createPlainUser(other.url, otherAdmin, "other");
    const before = await expectStreamMatchesDatabase(nats.url, other.databaseUrl);
    await servers.pop()?.close();
    await new Promise((done) => setTimeout(done, 300));

    const fresh = await startTestServer({ NATS_URL: nats.url });
    servers.push(fresh);
    await createPlainUser(fresh.url, await adminToken(fresh.url), "fresh");
    // Every event of the fresh database, its first ones included, after the other's.
    const ids = async () => {
      const [stream, ours] = await Promise.all([streamEvents(nats.url), databaseEvents(fresh.databaseUrl)]);
      return { stream: stream.slice(before.length).map((m) => m.msgId), ours: ours.map((e) => e.id) };
    };
    await expect
      .poll(
        async () => {
          const { stream, ours } = await ids();
          return stream.join() === ours.join();
        },
        { timeout: 10_000 },
      )
      .toBe(true);
    expect(fresh.logs.some((l) => String(l.msg).startsWith("the stream's last event is not this database's"))).toBe(
      true,
    );
  });
});
