/**
 * Sessions (refresh-token families) revoked by Logout or by the reuse of a rotated refresh token, so that
 * the access tokens issued in them (claim `sid`) stop working too: "revokes every token of that session
 * family" (API.md). The refresh_tokens table already records each revocation (`revoke_time`); every replica
 * reads the new ones every `pollMs` (half a second by default) and keeps the families in memory for as long
 * as an access token can live, so the auth check costs no query. The replica that revokes knows at once.
 *
 * The poll reads back a minute before the newest revocation it has seen: `revoke_time` is stamped before
 * the transaction commits, so a revocation can become visible a little after later ones.
 */
import type pg from "pg";
import type { Logger } from "pino";

const OVERLAP_MS = 60_000;

/** Builds the registry; call `start()` once. `keepMs` is the access token lifetime (plus clock skew). */
export function createRevokedSessions(opts: { pool: pg.Pool; keepMs: number; log: Logger; pollMs?: number }) {
  const revoked = new Map<string, number>(); // family id -> revoke time (ms)
  let newest = Date.now() - opts.keepMs;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;

  async function poll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      const { rows } = await opts.pool.query<{ family_id: string; t: Date }>({
        name: "revoked-sessions",
        text: `select family_id, max(revoke_time) as t from refresh_tokens
          where revoke_time > $1 group by family_id`,
        values: [new Date(newest - OVERLAP_MS)],
      });
      for (const r of rows) {
        const t = r.t.getTime();
        revoked.set(r.family_id, Math.max(t, revoked.get(r.family_id) ?? 0));
        if (t > newest) newest = t;
      }
      // An access token lives at most keepMs: after that, its session's entry is no longer needed.
      const horizon = Date.now() - opts.keepMs - OVERLAP_MS;
      for (const [family, t] of revoked) if (t < horizon) revoked.delete(family);
    } catch (err) {
      // The database is away: keep what we know and try again at the next tick.
      opts.log.debug({ errorName: (err as Error)?.name }, "revoked sessions poll failed");
    } finally {
      polling = false;
    }
  }

  return {
    /** Loads the revocations of the last `keepMs`, then polls. */
    async start(): Promise<void> {
      await poll();
      timer = setInterval(() => void poll(), opts.pollMs ?? 500);
      timer.unref();
    },
    /** Records a revocation made by this replica (the others learn it from the poll). */
    add(familyId: string): void {
      revoked.set(familyId, Date.now());
    },
    /** True when the session was revoked. */
    has(familyId: string): boolean {
      return revoked.has(familyId);
    },
    close(): void {
      clearInterval(timer);
    },
  };
}

/** The registry. */
export type RevokedSessions = ReturnType<typeof createRevokedSessions>;
