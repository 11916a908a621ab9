import { Migration } from "@mikro-orm/migrations";

/**
 * One-time codes: password reset and email verification (issue 15, docs/adr/0021-one-time-codes.md).
 *
 * One row per user and purpose (the primary key): a new code replaces the previous one in the same row, so
 * at most one code per user and purpose is ever live. Only an HMAC of the code is kept (`code_hash`), never
 * the code. `email_lower` is the address the code was issued for: once the user's email is another, the code
 * matches nothing. `attempts` counts wrong tries, in the statement that checks the code (a row update, so
 * concurrent tries on any replica queue on the row lock); at 5 the code is dead. The pruner deletes rows that
 * are expired, used or dead (src/app/prune-statements.ts): a missing row reads exactly like one of those.
 */
export class Migration20261206120000 extends Migration {
  override up(): void {
    this.addSql(`
      create table one_time_codes (
        user_id uuid not null references users (id) on delete cascade,
        purpose text not null check (purpose in ('password_reset', 'email_verification')),
        code_hash bytea not null,
        email_lower text not null,
        create_time timestamptz not null,
        expire_time timestamptz not null,
        attempts integer not null default 0,
        used_time timestamptz,
        primary key (user_id, purpose)
      )`);
    this.addSql("create index one_time_codes_expire_time_idx on one_time_codes (expire_time)");
  }

  override down(): void {
    this.addSql("drop table one_time_codes");
  }
}
