/**
 * Brute-force lockout per email, stored in PostgreSQL so every replica shares it (API.md "Lockout": 5 failed
 * logins for one email within 15 minutes lock it for 15 minutes; a lock always ends).
 *
 * Every attempt is counted before the password is checked, by one atomic upsert (the reservation), so 100
 * parallel guesses cannot get more than 5 checks through. The same statement sets the lock when it counts
 * the 5th attempt of the window: nothing has to happen after the password check for the lock to exist or
 * to end, so a login interrupted half-way (a timeout, a killed pod) can neither leave an email locked for
 * ever nor spare it the lock. A failure therefore needs no second write; a success deletes the row (the
 * count starts again, and a correct 5th attempt lifts the lock its reservation set).
 *
 * The window slides: the row keeps the times of the attempts of the last 15 minutes (at most 5), and older
 * ones no longer count. A lock that has ended starts a fresh count. Unknown emails are counted exactly like
 * known ones, so the lockout reveals nothing about which emails exist.
 */
import type pg from "pg";
import { ServiceError } from "../rpc/errors.ts";

const MAX_FAILURES = 5;
const WINDOW_MS = 15 * 60_000;
const LOCK_MS = 15 * 60_000;

// $1 email key, $2 window (ms), $3 lock (ms), $4 attempts that lock.
// Three cases, on the row as it was: locked (count the refusal, change nothing else), a lock that has ended
// (start again at 1), no lock (keep the attempts still inside the window, add this one, lock at the 5th).
// `attempts` is what the caller reads: above $4 means refused.
const reserve = `
  insert into login_failures as f (email_key, attempts, attempt_times, locked_until, update_time)
  values ($1, 1, array[now()], null, now())
  on conflict (email_key) do update set
    attempts = case
      when f.locked_until > now() then least(f.attempts, $4) + 1
      when f.locked_until is not null then 1
      else (select count(*) from unnest(f.attempt_times) t where t > now() - make_interval(secs => $2::double precision / 1000)) + 1
    end,
    attempt_times = case
      when f.locked_until > now() then f.attempt_times
      when f.locked_until is not null then array[now()]
      else array(
        select t from unnest(f.attempt_times) t where t > now() - make_interval(secs => $2::double precision / 1000)
        order by t desc limit $4 - 1
      ) || now()
    end,
    locked_until = case
      when f.locked_until > now() then f.locked_until
      when f.locked_until is null
        and (select count(*) from unnest(f.attempt_times) t where t > now() - make_interval(secs => $2::double precision / 1000)) + 1 >= $4
        then now() + make_interval(secs => $3::double precision / 1000)
    end,
    update_time = now()
  returning attempts, locked_until, now() as now`;

function locked(retryAfterMs: number): ServiceError {
  return new ServiceError("ACCOUNT_LOCKED", "too many failed logins for this email; try again later", {
    retryAfterMs: Math.max(1000, Math.ceil(retryAfterMs / 1000) * 1000),
  });
}

/** Builds the lockout over a pg pool. */
export function createLoginLockout(pool: pg.Pool) {
  const key = (email: string) => email.normalize("NFKC").toLowerCase();
  return {
    /**
     * Counts an attempt, before the password is checked; throws ACCOUNT_LOCKED when the email is locked.
     * The 5th attempt of the window goes through (and is checked) but locks the email for everyone else:
     * `locks` says so (the lock stays unless this attempt succeeds; an auth event records it).
     */
    async reserve(email: string): Promise<{ locks: boolean }> {
      const { rows } = await pool.query<{ attempts: number; locked_until: Date | null; now: Date }>({
        name: "lockout-reserve",
        text: reserve,
        values: [key(email), WINDOW_MS, LOCK_MS, MAX_FAILURES],
      });
      const r = rows[0];
      if (r.attempts > MAX_FAILURES) {
        throw locked(r.locked_until ? r.locked_until.getTime() - r.now.getTime() : LOCK_MS);
      }
      return { locks: r.attempts === MAX_FAILURES && r.locked_until !== null };
    },
    /** Records a success: the count starts again, and a lock set by this attempt's reservation is lifted. */
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
