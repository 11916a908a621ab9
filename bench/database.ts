/**
 * The database a bench scenario runs against: BENCH_DATABASE_URL when set, otherwise an embedded PostgreSQL
 * under the OS temp directory, started here; what it starts is pushed on `cleanups` (run last-in, first-out).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.ts";

/** Resolves with the database URL. `name` names the temp directory. */
export async function benchDatabase(
  name: string,
  cleanups: (() => Promise<void>)[],
  log: (line: string) => void,
): Promise<string> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) return given;
  const work = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  const embedded = await startEmbeddedPostgres(work, log);
  cleanups.push(() => embedded.stop());
  return embedded.url;
}
