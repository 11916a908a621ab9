/**
 * Migrations on an empty database: applied at start, and replicas starting at the same moment do not race
 * (one applies them under an advisory lock, the others wait and find nothing pending).
 */
import { randomBytes } from "node:crypto";
import { afterAll, expect, inject, it } from "vitest";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { withDatabase } from "../helpers/urls.ts";

const servers: TestServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

it("three replicas starting together on an empty database all come up, with every migration applied once", async () => {
  const name = `t_empty_${randomBytes(4).toString("hex")}`;
  await query(inject("pgAdminUrl"), `create database ${name}`);
  const url = withDatabase(inject("pgAdminUrl"), name);
  const started = await Promise.all([1, 2, 3].map(() => startTestServer({ DATABASE_URL: url })));
  servers.push(...started);
  for (const s of started) expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  const rows = await query<{ name: string; n: string }>(
    url,
    "select name, count(*) as n from mikro_orm_migrations group by name order by name",
  );
  expect(rows.length).toBeGreaterThanOrEqual(4);
  expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
  const admins = await query<{ n: string }>(url, "select count(*) as n from users where role = 'admin'");
  expect(Number(admins[0].n)).toBe(1);
}, 60_000);
