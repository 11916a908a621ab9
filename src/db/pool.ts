/**
 * A plain `pg` pool for the queries where MikroORM's per-call cost shows (hot primary-key reads, list and
 * stream scans, change-log reads): real bind parameters and named prepared statements. The ORM stays the
 * model for writes.
 */
import pg from "pg";

/** Creates the pool. Errors on idle clients (database restarts) are expected and must not crash the process. */
export function createPgPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    // Fail fast while the database is away: calls answer UNAVAILABLE within seconds, not at their deadline.
    connectionTimeoutMillis: 2000,
    query_timeout: 15_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on("error", () => {});
  return pool;
}
