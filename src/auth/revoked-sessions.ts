/**
 * Revoked sessions (Logout, reuse of a rotated refresh token, a password change, a suspension or deletion),
 * so that the access tokens issued in them (claim `sid`) stop working on every replica with no query per
 * call. The sessions table records each revocation (`revoke_time`); every replica reads the new ones every
 * `pollMs` (half a second by default). The replica that revokes knows at once.
 *
 * How long an entry is kept: until the last access token of the session has expired. Every access token is
 * issued at the instant its session row recorded (`last_refresh_time`, set by the login or rotation that
 * issued it, under the row's lock) and its `exp` is computed from that instant, not from the time of
 * signing, so a token signed late (a slow event loop) expires no later than `last_refresh_time + TTL`. No
 * token is issued in a session after its revocation (rotation locks the row and sees it), so
 * `max(revoke_time, last_refresh_time) + TTL` bounds every token of the session; `keepMs` is the TTL plus
 * a margin. The instant comes from the issuing replica's clock and the token's `exp` from the same
 * instant, and both are compared with this replica's clock, so a skew between replicas cancels out.
 *
 * The poll reads back a minute before the newest revocation it has seen: `revoke_time` is stamped before
 * the transaction commits, so a revocation can become visible a little after later ones.
 */
import type pg from "pg";
import type { Logger } from "pino";

const OVERLAP_MS = 60_000;

/** A revoked session, as a revocation reports it: enough to know how long to remember it. */
export interface RevokedSession {
  id: string;
  /** When the session's newest access token was issued. */
  lastRefreshTime: Date;
}

/** Builds the registry; call `start()` once. `keepMs` is the access token lifetime plus a margin. */
export function createRevokedSessions(opts: { pool: pg.Pool; keepMs: number; log: Logger; pollMs?: number }) {
  const revoked = new Map<string, number>(); // session id -> forget after (ms)
  let newest = Date.now() - opts.keepMs;
  let timer: NodeJS.Timeout | undefined;
  let polling = false;

  const remember = (id: string, sinceMs: number) => {
    const until = sinceMs + opts.keepMs;
    if (until > (revoked.get(id) ?? 0)) revoked.set(id, until);
  };

  async function poll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      const { rows } = await opts.pool.query<{ id: string; revoke_time: Date; last_refresh_time: Date }>({
        name: "revoked-sessions",
        text: "select id, revoke_time, last_refresh_time from sessions where revoke_time > $1",
        values: [new Date(newest - OVERLAP_MS)],
      });
      for (const r of rows) {
        const t = r.revoke_time.getTime();
        remember(r.id, Math.max(t, r.last_refresh_time.getTime()));
        if (t > newest) newest = t;
      }
      const now = Date.now();
      for (const [id, until] of revoked) if (until < now) revoked.delete(id);
    } catch (err) {
      // The database is away: keep what we know and try again at the next tick.
      opts.log.debug({ errorName: (err as Error)?.name }, "revoked sessions poll failed");
    } finally {
      polling = false;
    }
  }

  return {
    /** Loads the revocations whose tokens may still be valid, then polls. */
    async start(): Promise<void> {
      await poll();
      timer = setInterval(() => void poll(), opts.pollMs ?? 500);
      timer.unref();
    },
    /** Records a revocation made by this replica (the others learn it from the poll). */
    add(session: RevokedSession): void {
      remember(session.id, Math.max(Date.now(), session.lastRefreshTime.getTime()));
    },
    /** True when the session was revoked (and one of its access tokens may still be unexpired). */
    has(sessionId: string): boolean {
      return revoked.has(sessionId);
    },
    /** When the entry of a session will be forgotten (ms), for tests and diagnostics. */
    keptUntil(sessionId: string): number | undefined {
      return revoked.get(sessionId);
    },
    close(): void {
      clearInterval(timer);
    },
  };
}

/** The registry. */
export type RevokedSessions = ReturnType<typeof createRevokedSessions>;
