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
    // (pg-pool applies this to waiting for a free client too, so it must also outlast a burst of load: at
    // 2 s the benchmark saw UNAVAILABLE under overload. A stopped database refuses at once anyway.)
    connectionTimeoutMillis: 5000,
    // No client-side query_timeout here: it arms a timer per query, measurable on the GetUser hot path.
    // TCP keep-alive finds a dead peer instead.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on("error", () => {});
  return pool;
}
