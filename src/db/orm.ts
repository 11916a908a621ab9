/**
 * Builds the MikroORM instance: the committed migrations (listed explicitly, so nothing depends on a glob or
 * a build step), the connection pool, and the entities the features define (passed in by the app: the
 * database layer knows the schema through its migrations, not the features' types).
 */
import { Migrator } from "@mikro-orm/migrations";
import { type EntitySchema, MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import { Migration20261122000000 } from "./migrations/Migration20261122000000.ts";
import { Migration20261122000100 } from "./migrations/Migration20261122000100.ts";
import { Migration20261122000200 } from "./migrations/Migration20261122000200.ts";
import { Migration20261122000300 } from "./migrations/Migration20261122000300.ts";
import { Migration20261122000400 } from "./migrations/Migration20261122000400.ts";
import { Migration20261122000500 } from "./migrations/Migration20261122000500.ts";
import { Migration20261205000000 } from "./migrations/Migration20261205000000.ts";
import { Migration20261205000900 } from "./migrations/Migration20261205000900.ts";
import { Migration20261206001600 } from "./migrations/Migration20261206001600.ts";
import { Migration20261206100000 } from "./migrations/Migration20261206100000.ts";
import { Migration20261206110000 } from "./migrations/Migration20261206110000.ts";
import { Migration20261206120000 } from "./migrations/Migration20261206120000.ts";
import { Migration20261206130000 } from "./migrations/Migration20261206130000.ts";
import { Migration20261206140000 } from "./migrations/Migration20261206140000.ts";
import { Migration20261206150000 } from "./migrations/Migration20261206150000.ts";
import { Migration20261207000000 } from "./migrations/Migration20261207000000.ts";
import { Migration20261207000100 } from "./migrations/Migration20261207000100.ts";
import { Migration20261207000200 } from "./migrations/Migration20261207000200.ts";

/** The ORM type used across the service. */
export type Orm = MikroORM;

const migrations = [
  { name: "Migration20261122000000", class: Migration20261122000000 },
  { name: "Migration20261122000100", class: Migration20261122000100 },
  { name: "Migration20261122000200", class: Migration20261122000200 },
  { name: "Migration20261122000300", class: Migration20261122000300 },
  { name: "Migration20261122000400", class: Migration20261122000400 },
  { name: "Migration20261122000500", class: Migration20261122000500 },
  { name: "Migration20261205000000", class: Migration20261205000000 },
  { name: "Migration20261205000900", class: Migration20261205000900 },
  { name: "Migration20261206001600", class: Migration20261206001600 },
  { name: "Migration20261206100000", class: Migration20261206100000 },
  { name: "Migration20261206110000", class: Migration20261206110000 },
  { name: "Migration20261206120000", class: Migration20261206120000 },
  { name: "Migration20261206130000", class: Migration20261206130000 },
  { name: "Migration20261206140000", class: Migration20261206140000 },
  { name: "Migration20261206150000", class: Migration20261206150000 },
  { name: "Migration20261207000000", class: Migration20261207000000 },
  { name: "Migration20261207000100", class: Migration20261207000100 },
  { name: "Migration20261207000200", class: Migration20261207000200 },
];

/** Connects to PostgreSQL; does not migrate (see `migrate`). Without entities it can only migrate. */
export async function createOrm(url: string, poolMax: number, entities: readonly EntitySchema[] = []): Promise<Orm> {
  return MikroORM.init({
    clientUrl: url,
    entities: [...entities],
    discovery: { warnWhenNoEntities: false },
    extensions: [Migrator],
    migrations: {
      path: "src/db/migrations",
      migrationsList: migrations,
      transactional: true,
      allOrNothing: true,
      silent: true,
      snapshot: false,
    },
    pool: { min: 0, max: poolMax },
    // Fail fast while the database is away (UNAVAILABLE within seconds, not at the caller's deadline).
    driverOptions: { connectionTimeoutMillis: 5000, query_timeout: 15_000 },
    debug: false,
    // Queries never run on the global EntityManager: every call forks its own.
    allowGlobalContext: false,
  });
}

/** Applies pending migrations; returns the names applied. */
export async function migrate(orm: Orm): Promise<string[]> {
  // Replicas starting together must not race to apply the same migration (the losers would fail start-up):
  // one session-level advisory lock, on a connection of its own, lets one apply while the others wait and
  // then find nothing pending.
  const client = new pg.Client({ connectionString: orm.config.get("clientUrl"), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
    const applied = await orm.migrator.up();
    return applied.map((m) => m.name);
  } finally {
    await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
    await client.end().catch(() => {});
  }
}

/** Advisory lock key serialising migrations across replicas ("migr" in ASCII). */
const MIGRATION_LOCK = 0x6d696772;

/** True when every committed migration has been applied. */
export async function migrationsApplied(orm: Orm): Promise<boolean> {
  return (await orm.migrator.getPending()).length === 0;
}
