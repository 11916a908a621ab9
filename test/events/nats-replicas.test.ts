/**
 * Two replicas publishing to NATS from one database (docs/nats.md): each event once in the stream, in order,
 * published by the one holding the lease; the other takes over when the holder shuts down. A replica that
 * publishes after losing its lease is test/events/nats-stale.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { expectStreamMatchesDatabase, type NatsServer, startNats } from "../helpers/nats.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText } from "../ops/prometheus-text.ts";

let nats: NatsServer;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  nats = await startNats();
  a = await startTestServer({ NATS_URL: nats.url });
  b = await startTestServer({ NATS_URL: nats.url, DATABASE_URL: a.databaseUrl });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await nats?.dispose();
});

async function published(s: TestServer): Promise<number> {
  const samples = parsePrometheusText(await (await fetch(`${s.url}/metrics`)).text());
  let n = 0;
  for (const [key, value] of samples) if (key.startsWith("nats_published_total{")) n += value;
  return n;
}

describe("two replicas with NATS_URL", () => {
  it("publish each event once, whichever holds the lease", async () => {
    const [adminA, adminB] = await Promise.all([adminToken(a.url), adminToken(b.url)]);
    await Promise.all([
      ...Array.from({ length: 10 }, () => createPlainUser(a.url, adminA, "on-a")),
      ...Array.from({ length: 10 }, () => createPlainUser(b.url, adminB, "on-b")),
    ]);
    await expectStreamMatchesDatabase(nats.url, a.databaseUrl);
    // One replica published: the other never held the lease.
    const counts = await Promise.all([published(a), published(b)]);
    expect(counts.filter((n) => n === 0)).toHaveLength(1);
  });

  it("hand over when the holder shuts down", async () => {
    const [holder, other] = (await published(a)) >= (await published(b)) ? [a, b] : [b, a];
    await holder.close();
    await createPlainUser(other.url, await adminToken(other.url), "after-handover");
    await expectStreamMatchesDatabase(nats.url, other.databaseUrl);
  });
});
