/**
 * Starts one PostgreSQL for the whole run (embedded, unless TEST_DATABASE_URL is given) and migrates a
 * template database; each test server clones it (`CREATE DATABASE ... TEMPLATE`), which takes milliseconds.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { ensureServerBuilt } from "../scripts/ensure-built.ts";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.ts";
import { createOrm, migrate } from "../src/db/orm.ts";
import { withDatabase } from "./helpers/urls.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the maintenance database of the test PostgreSQL. */
    pgAdminUrl: string;
    /** Name of the migrated template database. */
    templateDb: string;
  }
}

const templateDb = "user_service_template";

export default async function setup(project: TestProject) {
  // The process tests run the server bundle, as npm start does: build it if a source changed since
  // (npm test does this as pretest; this covers `vitest run <file>` after an edit).
  await ensureServerBuilt();
  let stop = async () => {};
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    const dir = mkdtempSync(join(tmpdir(), "user-service-test-"));
    const embedded = await startEmbeddedPostgres(dir, () => {});
    adminUrl = embedded.url;
    stop = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  await client.query(`drop database if exists ${templateDb}`);
  await client.query(`create database ${templateDb}`);
  await client.end();
  const orm = await createOrm(withDatabase(adminUrl, templateDb), 2);
  await migrate(orm);
  await orm.close(true);
  project.provide("pgAdminUrl", adminUrl);
  project.provide("templateDb", templateDb);
  return stop;
}
