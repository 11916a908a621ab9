/**
 * One-time codes (password reset, email verification): made for an admin's backend to deliver by email,
 * typed back by a person, single use, stored only as an HMAC (docs/adr/0021-one-time-codes.md).
 *
 * A code is 10 characters of Crockford's base32 (50 random bits), shown as two groups of five
 * (`7K3QD-M9X2F`). What is typed back is read leniently: any case, spaces and hyphens ignored, I and L read
 * as 1, O as 0. With at most 5 wrong tries a code, a guess succeeds with probability 5 / 2^50 (about 4e-15).
 *
 * The table keeps one row per user and purpose; a new code overwrites it (the previous code is gone). A
 * try is one UPDATE of that row that checks the code, counts a wrong try or marks the code used, and
 * returns whether it matched: concurrent tries, on any replica, queue on the row lock, and each re-reads the
 * row it waited for, so no more than 5 wrong tries are ever counted and a code is used at most once.
 */
import { createHmac, randomBytes } from "node:crypto";
import type pg from "pg";

/** What a code is for; a code of one purpose never matches a try of the other. */
export type CodePurpose = "password_reset" | "email_verification";

/** Wrong tries a code accepts; the next try fails even with the right code. */
export const MAX_CODE_ATTEMPTS = 5;

/** Crockford's base32 alphabet: no I, L, O, U. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LENGTH = 10;

/** A new code: each of 10 random bytes keeps its low 5 bits (256 is a multiple of 32, so every symbol is equally likely). */
export function newCode(): string {
  const symbols = [...randomBytes(CODE_LENGTH)].map((b) => ALPHABET[b & 31]).join("");
  return `${symbols.slice(0, 5)}-${symbols.slice(5)}`;
}

/** A typed code as it was issued: upper case, without separators, with the look-alikes read as Crockford says. */
export function canonicalCode(typed: string): string {
  return typed.normalize("NFKC").toUpperCase().replace(/[\s-]/g, "").replace(/[IL]/g, "1").replace(/O/g, "0");
}

/** A user a code is issued to or tried for: its id and current email. */
export interface CodeHolder {
  id: string;
  email: string;
}

/** An id that no user has: a try for no user runs the same statement and matches nothing. */
const NO_USER = "00000000-0000-0000-0000-000000000000";

// $1 user, $2 purpose, $3 HMAC, $4 email (lower case), $5 lifetime (ms).
const issue = `
  insert into one_time_codes as c (user_id, purpose, code_hash, email_lower, create_time, expire_time, attempts, used_time)
  values ($1, $2, $3, $4, now(), now() + make_interval(secs => $5::double precision / 1000), 0, null)
  on conflict (user_id, purpose) do update set
    code_hash = excluded.code_hash, email_lower = excluded.email_lower, create_time = excluded.create_time,
    expire_time = excluded.expire_time, attempts = 0, used_time = null
  returning expire_time`;

// $1 user, $2 purpose, $3 HMAC, $4 the user's email now (lower case), $5 MAX_CODE_ATTEMPTS. Only a live code
// (unused, unexpired, fewer than $5 wrong tries, issued for the address the user has now) is touched.
const tryCode = `
  update one_time_codes set
    attempts = attempts + case when code_hash = $3 then 0 else 1 end,
    used_time = case when code_hash = $3 then now() end
  where user_id = $1 and purpose = $2 and email_lower = $4
    and used_time is null and expire_time > now() and attempts < $5
  returning used_time is not null as used`;

/** The codes, over a pg pool; `key` keys the HMAC (derived from the token key material, the same on every replica). */
export function createOneTimeCodes(opts: { pool: pg.Pool; key: string; ttlMs: number }) {
  const { pool } = opts;
  const hmac = (code: string) => createHmac("sha256", opts.key).update(canonicalCode(code)).digest();
  return {
    /** Makes a code for `user`, replacing any code it had for `purpose`; returns it with its expiry. */
    async issue(user: CodeHolder, purpose: CodePurpose): Promise<{ code: string; expireTime: Date }> {
      const code = newCode();
      const { rows } = await pool.query<{ expire_time: Date }>({
        name: "one-time-code-issue",
        text: issue,
        values: [user.id, purpose, hmac(code), user.email.toLowerCase(), opts.ttlMs],
      });
      return { code, expireTime: rows[0].expire_time };
    },

    /**
     * Tries `code` for `user` (null: no user may have it; the same statement runs, so the answer takes the
     * same time). True when it was the user's live code, which is now used; false otherwise, a wrong try
     * of a live code having been counted.
     */
    async use(user: CodeHolder | null, purpose: CodePurpose, code: string): Promise<boolean> {
      const { rows } = await pool.query<{ used: boolean }>({
        name: "one-time-code-try",
        text: tryCode,
        values: [user?.id ?? NO_USER, purpose, hmac(code), user?.email.toLowerCase() ?? "", MAX_CODE_ATTEMPTS],
      });
      return rows[0]?.used === true;
    },
  };
}

/** The codes. */
export type OneTimeCodes = ReturnType<typeof createOneTimeCodes>;
