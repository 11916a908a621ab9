/**
 * A PostgreSQL outage under the NATS publisher (docs/nats.md): the database stops and comes back; the
 * publisher logs it once, never crashes, and resumes from its cursor: every event once, in order.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/db/embedded-postgres.ts";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { expectStreamMatchesDatabase, type NatsServer, startNats } from "../helpers/nats.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let dir: string;
let pg: EmbeddedPostgres;
let nats: NatsServer;
let server: TestServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "user-service-nats-db-outage-"));
  [pg, nats] = await Promise.all([startEmbeddedPostgres(dir, () => {}), startNats()]);
  server = await startTestServer({ DATABASE_URL: pg.url, NATS_URL: nats.url });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await pg?.stop();
  await nats?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const paused = () =>
  server.logs.filter((l) => l.msg === "NATS publishing paused: the database is unavailable; events wait in PostgreSQL");

it("resumes from its cursor after the database comes back, with one warning", async () => {
  const admin = await adminToken(server.url);
  for (let i = 0; i < 5; i++) await createPlainUser(server.url, admin, "before");
  await expectStreamMatchesDatabase(nats.url, pg.url);

  await pg.stop();
  await expect.poll(() => paused().length, { timeout: 10_000 }).toBe(1);
  pg = await startEmbeddedPostgres(dir, () => {}, { port: pg.port });
  await expect
    .poll(
      () =>
        createPlainUser(server.url, admin, "after").then(
          () => true,
          () => false,
        ),
      { timeout: 20_000 },
    )
    .toBe(true);
  for (let i = 0; i < 5; i++) await createPlainUser(server.url, admin, "after");

  await expectStreamMatchesDatabase(nats.url, pg.url);
  expect(paused()).toHaveLength(1);
  // Logged once the pass that published them has saved the cursor.
  await expect.poll(() => server.logs.some((l) => l.msg === "NATS publishing resumed")).toBe(true);
}, 60_000);
