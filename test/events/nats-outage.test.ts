/**
 * A NATS outage mid-stream of writes (docs/nats.md): nats-server stopped while users are being created,
 * more written while it is down, then started again on the same port and store. The stream ends with every
 * event exactly once, in order; the outage is logged once, without the URL's credentials; nats_connected
 * follows the connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { expectStreamMatchesDatabase, type NatsServer, startNats } from "../helpers/nats.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText } from "../ops/prometheus-text.ts";

let nats: NatsServer;
let server: TestServer;

beforeAll(async () => {
  nats = await startNats();
  // A server without authorization ignores the credentials: they are here to be kept out of the logs.
  server = await startTestServer({ NATS_URL: nats.url.replace("nats://", "nats://publisher:hunter2-secret@") });
});
afterAll(async () => {
  await server?.close();
  await nats?.dispose();
});

const connected = async () =>
  parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text()).get("nats_connected");

describe("a NATS outage", () => {
  it("loses and repeats nothing: every event once, in order, after nats-server comes back", async () => {
    const admin = await adminToken(server.url);
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await createPlainUser(server.url, admin, "outage");
        written++;
      }
    })();
    await expect.poll(() => written, { timeout: 5000 }).toBeGreaterThan(20);
    await nats.stop();
    await expect.poll(connected, { timeout: 5000 }).toBe(0);
    const before = written;
    await expect.poll(() => written, { timeout: 5000 }).toBeGreaterThan(before + 20);
    await nats.start();
    await expect.poll(connected, { timeout: 10_000 }).toBe(1);
    const back = written;
    await expect.poll(() => written, { timeout: 5000 }).toBeGreaterThan(back + 20);
    writing = false;
    await writer;

    await expectStreamMatchesDatabase(nats.url, server.databaseUrl);
    const paused = server.logs.filter((l) => String(l.msg).startsWith("NATS publishing paused"));
    expect(paused).toHaveLength(1);
    // Logged once the pass that published the last events has saved the cursor.
    await expect.poll(() => server.logs.filter((l) => l.msg === "NATS publishing resumed").length).toBe(1);
    expect(server.logText()).not.toContain("hunter2");
    expect(paused[0].servers).toBe(`nats://***@127.0.0.1:${nats.port}`);
  });
});
