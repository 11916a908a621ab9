/**
 * What the auth check needs to know about a token's user (exists, state, current role, tokens valid
 * after), kept in memory so that verifying a call costs no database query. Entries are loaded on first use
 * and then kept exact by the change log: every replica applies every change within the feed's latency
 * (milliseconds; the feed also polls every second), which is how a suspension, deletion or password change
 * revokes tokens everywhere within one second.
 */
import type pg from "pg";
import type { ChangeEvent } from "../changes/change-feed.ts";
import type { StoredRole, StoredState } from "../users/user.entity.ts";

/** The auth-relevant facts of a user. */
export interface UserStatus {
  role: StoredRole;
  state: StoredState;
  tokensValidAfterMs: number;
}

type Row = { role: StoredRole; state: StoredState; tokens_valid_after: Date | null };

/** Builds the cache over a pg pool. `max` bounds memory (least recently loaded entries go first). */
export function createUserStatusCache(pool: pg.Pool, max = 100_000) {
  const entries = new Map<string, UserStatus | null>();
  // Bumped by every applied change: a load that raced with a change is not cached (it may be stale).
  let epoch = 0;

  function put(id: string, status: UserStatus | null): void {
    if (entries.size >= max && !entries.has(id)) {
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
    entries.set(id, status);
  }

  return {
    /** The status of a user, or null when no such user exists. */
    async get(id: string): Promise<UserStatus | null> {
      const hit = entries.get(id);
      if (hit !== undefined) return hit;
      const started = epoch;
      const res = await pool.query<Row>({
        name: "user-status",
        text: "select role, state, tokens_valid_after from users where id = $1",
        values: [id],
      });
      const r = res.rows[0];
      const status = r
        ? { role: r.role, state: r.state, tokensValidAfterMs: r.tokens_valid_after?.getTime() ?? 0 }
        : null;
      if (epoch === started) put(id, status);
      return status;
    },
    /** Applies committed changes (from the change feed or from a local write). */
    apply(events: readonly ChangeEvent[]): void {
      epoch++;
      for (const e of events) {
        if (!entries.has(e.userId)) continue;
        const s = e.snapshot;
        entries.set(e.userId, {
          role: s.role,
          state: s.state,
          tokensValidAfterMs: s.tokensValidAfter ? Date.parse(s.tokensValidAfter) : 0,
        });
      }
    },
    /** Forgets a user (after a local write, until the feed brings the change). */
    forget(id: string): void {
      epoch++;
      entries.delete(id);
    },
  };
}

/** The cache. */
export type UserStatusCache = ReturnType<typeof createUserStatusCache>;
