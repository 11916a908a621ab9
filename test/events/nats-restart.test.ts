/**
 * Service restarts while publishing to NATS (docs/nats.md): a replica killed (SIGKILL) part-way through a
 * backlog, and another started on the same database, leaves every event in the stream once; and a cursor
 * that was never saved, found behind the stream after the duplicate window has passed (so Nats-Msg-Id dedup
 * cannot help), is moved up to the stream's last event by the reconcile instead of publishing again.
 */
import { hash as bcryptHash } from "@node-rs/bcrypt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ImportUsersRequest } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import {
  createUserEventsStream,
  duplicateWindowMs,
  expectStreamMatchesDatabase,
  type NatsServer,
  startNats,
  streamLength,
} from "../helpers/nats.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let nats: NatsServer;
const servers: TestServer[] = [];

beforeAll(async () => {
  nats = await startNats();
});
afterEach(async () => {
  killProcesses();
  for (const s of servers.splice(0)) await s.close();
});
afterAll(() => nats?.dispose());

async function* importRows(n: number, hash: string): AsyncGenerator<Partial<Omit<ImportUsersRequest, "$typeName">>> {
  for (let i = 0; i < n; i++)
    yield {
      user: { email: `backlog-${i}@example.com`, displayName: `Backlog ${i}` } as never,
      credential: { case: "passwordHash", value: hash },
    };
}

describe("a service restart while publishing", () => {
  it("killed part-way through a backlog, then replaced: every event once, in order", async () => {
    const BACKLOG = 5000;
    const databaseUrl = await createTestDatabase();
    // The backlog builds up while NATS is away, then the replica starts publishing it and is killed.
    await nats.stop();
    const first = await startProcess({ DATABASE_URL: databaseUrl, NATS_URL: nats.url, LOG_LEVEL: "info" });
    const admin = await adminToken(first.url);
    const res = await clients(first.url, "grpc", () => admin).users.importUsers(
      importRows(BACKLOG, await bcryptHash("backlog-password", { cost: 4 })),
    );
    expect(res.createdCount).toBe(BACKLOG);
    await nats.start();
    await expect.poll(() => streamLength(nats.url), { timeout: 15_000, interval: 5 }).toBeGreaterThan(0);
    first.child.kill("SIGKILL");
    await first.exited;
    const atKill = await streamLength(nats.url);
    expect(atKill, "the replica was killed before it had published everything").toBeLessThan(BACKLOG);

    // Its lease runs out (as 15 s after its death), and another replica takes over from the saved cursor.
    await query(databaseUrl, "update event_publishers set lease_until = now() where name = 'nats'");
    servers.push(await startTestServer({ DATABASE_URL: databaseUrl, NATS_URL: nats.url }));
    await expectStreamMatchesDatabase(nats.url, databaseUrl);
  });

  it("moves a cursor found behind the stream up to its last event when the duplicate window cannot help", async () => {
    await nats.dispose();
    nats = await startNats();
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
});
