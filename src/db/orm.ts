/**
 * Builds the MikroORM instance: entities, the committed migrations (listed explicitly, so nothing depends on
 * a glob or a build step) and the connection pool.
 */
import { Migrator } from "@mikro-orm/migrations";
import { MikroORM } from "@mikro-orm/postgresql";
import { RefreshTokenEntity } from "../auth/refresh-token.entity.ts";
import { UserEntity } from "../users/user.entity.ts";
import { Migration20261122000000 } from "./migrations/Migration20261122000000.ts";
import { Migration20261122000100 } from "./migrations/Migration20261122000100.ts";
import { Migration20261122000200 } from "./migrations/Migration20261122000200.ts";
import { Migration20261122000300 } from "./migrations/Migration20261122000300.ts";

/** The ORM type used across the service. */
export type Orm = MikroORM;

const migrations = [
  { name: "Migration20261122000000", class: Migration20261122000000 },
  { name: "Migration20261122000100", class: Migration20261122000100 },
  { name: "Migration20261122000200", class: Migration20261122000200 },
  { name: "Migration20261122000300", class: Migration20261122000300 },
];

/** Connects to PostgreSQL; does not migrate (see `migrate`). */
export async function createOrm(url: string, poolMax: number): Promise<Orm> {
  return MikroORM.init({
    clientUrl: url,
    entities: [UserEntity, RefreshTokenEntity],
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
  const applied = await orm.migrator.up();
  return applied.map((m) => m.name);
}

/** True when every committed migration has been applied. */
export async function migrationsApplied(orm: Orm): Promise<boolean> {
  return (await orm.migrator.getPending()).length === 0;
}
