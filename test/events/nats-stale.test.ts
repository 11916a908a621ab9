/**
 * A stale publisher (docs/nats.md): a replica frozen (SIGSTOP) part-way through publishing a backlog, its
 * lease expired and taken over by another replica that publishes everything, then thawed (SIGCONT) with
 * the rest of its batch still to send, past the stream's duplicate window so Nats-Msg-Id dedup cannot
 * help. Each of its publishes expects the stream's last sequence it knew, so the stream refuses them:
 * every event stays in the stream once, in order.
 */
import { hash as bcryptHash } from "@node-rs/bcrypt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImportUsersRequest } from "../../gen/user/v1/user_service_pb.js";
import { adminToken } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import {
  createUserEventsStream,
  expectStreamMatchesDatabase,
  type NatsServer,
  startNats,
  streamLength,
} from "../helpers/nats.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";

let nats: NatsServer;
let replacement: TestServer | undefined;

beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  killProcesses();
  await replacement?.close();
  await nats?.dispose();
});

async function* importRows(n: number, hash: string): AsyncGenerator<Partial<Omit<ImportUsersRequest, "$typeName">>> {
  for (let i = 0; i < n; i++)
    yield {
      user: { email: `stale-${i}@example.com`, displayName: `Stale ${i}` } as never,
      credential: { case: "passwordHash", value: hash },
    };
}

describe("a replica that publishes after losing its lease", () => {
  it("is refused by the stream: every event once, in order", async () => {
    // The operator's stream, with the shortest duplicate window NATS allows.
    await createUserEventsStream(nats.url, 100);
    await nats.stop();
    const databaseUrl = await createTestDatabase();
    const stale = await startProcess({ DATABASE_URL: databaseUrl, NATS_URL: nats.url, LOG_LEVEL: "info" });
    const admin = await adminToken(stale.url);
    await clients(stale.url, "grpc", () => admin).users.importUsers(
      importRows(3000, await bcryptHash("stale-password", { cost: 4 })),
    );
    await nats.start();
    await expect.poll(() => streamLength(nats.url), { timeout: 15_000, interval: 5 }).toBeGreaterThan(0);
    stale.child.kill("SIGSTOP");

    await query(databaseUrl, "update event_publishers set lease_until = now() where name = 'nats'");
    replacement = await startTestServer({ DATABASE_URL: databaseUrl, NATS_URL: nats.url });
    await expectStreamMatchesDatabase(nats.url, databaseUrl);

    stale.child.kill("SIGCONT");
    const refused = async () =>
      parsePrometheusText(await (await fetch(`${stale.url}/metrics`)).text()).get(
        sampleKey("nats_publish_failures_total", { reason: "refused" }),
      );
    await expect.poll(refused, { timeout: 10_000 }).toBeGreaterThan(0);
    await expectStreamMatchesDatabase(nats.url, databaseUrl);
  });
});
