/**
 * Brute-force lockout per email, stored in PostgreSQL so every replica shares it. An attempt is reserved
 * (counted) before the password is checked, in one atomic upsert, so 100 parallel guesses cannot get more
 * than 5 checks through: the 6th reservation onwards is refused even while the first five are still being
 * verified. The 5th failure locks the email for 15 minutes; a success resets the count. Unknown emails are
 * counted exactly like known ones, so the lockout reveals nothing about which emails exist.
 */
import type pg from "pg";
import { ServiceError } from "../errors.ts";

const MAX_FAILURES = 5;
const LOCK_MS = 15 * 60_000;

const reserve = `
  insert into login_failures as f (email_key, attempts) values ($1, 1)
  on conflict (email_key) do update set
    attempts = case when f.locked_until is not null and f.locked_until <= now() then 1 else f.attempts + 1 end,
    locked_until = case when f.locked_until is not null and f.locked_until <= now() then null else f.locked_until end,
    update_time = now()
  returning attempts, locked_until, now() as now`;

const fail = `
  update login_failures set locked_until = now() + make_interval(secs => $2::double precision / 1000)
  where email_key = $1 and attempts >= $3 and locked_until is null`;

function locked(retryAfterMs: number): ServiceError {
  return new ServiceError("ACCOUNT_LOCKED", "too many failed logins for this email; try again later", {
    retryAfterMs: Math.max(1000, Math.ceil(retryAfterMs / 1000) * 1000),
  });
}

/** Builds the lockout over a pg pool. */
export function createLoginLockout(pool: pg.Pool) {
  const key = (email: string) => email.normalize("NFKC").toLowerCase();
  return {
    /** Counts an attempt; throws ACCOUNT_LOCKED when the email is locked or has too many attempts in flight. */
    async reserve(email: string): Promise<void> {
      const { rows } = await pool.query<{ attempts: number; locked_until: Date | null; now: Date }>({
        name: "lockout-reserve",
        text: reserve,
        values: [key(email)],
      });
      const r = rows[0];
      if (r.locked_until && r.locked_until > r.now) throw locked(r.locked_until.getTime() - r.now.getTime());
      if (r.attempts > MAX_FAILURES) throw locked(LOCK_MS);
    },
    /** Records that the reserved attempt failed: the 5th failure locks. */
    async failed(email: string): Promise<void> {
      await pool.query({ name: "lockout-fail", text: fail, values: [key(email), LOCK_MS, MAX_FAILURES] });
    },
    /** Records a success: the count starts again. */
    async succeeded(email: string): Promise<void> {
      await pool.query({
        name: "lockout-reset",
        text: "delete from login_failures where email_key = $1",
        values: [key(email)],
      });
    },
  };
}

/** The lockout. */
export type LoginLockout = ReturnType<typeof createLoginLockout>;
