/**
 * The database a service runs on: the embedded PostgreSQL unless DATABASE_URL is set, migrations, the ORM
 * (writes) and the raw query pool (hot reads), and the probe readiness and health ask.
 */

import type pg from "pg";
import type { Logger } from "pino";
import { RefreshTokenEntity } from "../auth/refresh-token.entity.ts";
import { SessionEntity } from "../auth/session.entity.ts";
import type { Config } from "../config.ts";
import { startEmbeddedPostgres } from "../db/embedded-postgres.ts";
import { createOrm, migrate, migrationsApplied, type Orm } from "../db/orm.ts";
import { createPgPool } from "../db/pool.ts";
import { UserEntity } from "../users/user.entity.ts";
import { type Releases, withTimeout } from "./releases.ts";

/** An open, migrated database. */
export interface Database {
  readonly url: string;
  readonly orm: Orm;
  readonly pool: pg.Pool;
  /** True when the database answers within 1 s with every migration applied. */
  answers(): Promise<boolean>;
}

export async function openDatabase(config: Config, log: Logger, releases: Releases): Promise<Database> {
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir, (m) => log.info(m));
  // Left running, the embedded PostgreSQL would hold its port and data directory: it gets longer to stop.
  if (embedded) releases.push("embedded PostgreSQL", () => embedded.stop(), 120_000);
  const url = config.databaseUrl ?? (embedded?.url as string);
  const orm = await createOrm(url, config.dbPoolMax, [UserEntity, RefreshTokenEntity, SessionEntity]);
  releases.push("ORM pool", () => orm.close(true));
  const applied = await migrate(orm);
  if (applied.length > 0) log.info({ migrations: applied }, "migrations applied");
  const pool = createPgPool(url, config.dbPoolMax);
  releases.push("query pool", () => pool.end());
  return {
    url,
    orm,
    pool,
    async answers() {
      try {
        await withTimeout(orm.em.getConnection().execute("select 1"), 1000);
        return await withTimeout(migrationsApplied(orm), 1000);
      } catch {
        return false;
      }
    },
  };
}
