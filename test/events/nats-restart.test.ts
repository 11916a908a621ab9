/**
 * A service restart while publishing to NATS (docs/nats.md): a replica killed (SIGKILL) part-way through a
 * backlog, and another started on the same database, leaves every event in the stream once, in order. The
 * reconcile that makes this hold past the duplicate window is test/events/nats-reconcile.test.ts.
 */
import { hash as bcryptHash } from "@node-rs/bcrypt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ImportUsersRequest } from "../../gen/user/v1/user_service_pb.js";
import { adminToken } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import { expectStreamMatchesDatabase, type NatsServer, startNats, streamLength } from "../helpers/nats.ts";
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
});
