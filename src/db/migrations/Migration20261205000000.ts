import { Migration } from "@mikro-orm/migrations";

/**
 * Sessions and a lockout that always ends (issue 13, docs/adr/0013-sessions.md).
 *
 * - `sessions`: one row per refresh-token family (its id is the family id). Rotation and every revocation
 *   lock this row, so a refresh racing a Logout, a reuse detection or a password change is serialised with
 *   it; the row also carries the absolute cap (`max_expire_time`) and what ListSessions will show. Existing
 *   families are copied in (a family with any revoked token is revoked: revocations always covered the
 *   whole family); their absolute cap counts from their first token, with the default SESSION_MAX_AGE.
 *   No foreign key from refresh_tokens yet: replicas of the previous version, during a rolling update,
 *   still insert tokens of families that have no session row (the new code adds the row when it meets one).
 * - `login_failures.attempt_times`: the times of the attempts in the current 15-minute window, so old
 *   failures stop counting (a sliding window) and the reservation that counts the 5th sets the lock itself.
 */
export class Migration20261205000000 extends Migration {
  override up(): void {
    this.addSql(`
      create table sessions (
        id uuid primary key,
        user_id uuid not null references users (id) on delete cascade,
        create_time timestamptz not null,
        last_refresh_time timestamptz not null,
        -- Idle expiry: REFRESH_TOKEN_TTL after the last use, never beyond max_expire_time.
        expire_time timestamptz not null,
        -- Absolute expiry: SESSION_MAX_AGE after the login.
        max_expire_time timestamptz not null,
        revoke_time timestamptz,
        client_address text,
        user_agent text
      )`);
    this.addSql("create index sessions_user_idx on sessions (user_id)");
    // Every replica asks twice a second which sessions were revoked lately (src/auth/revoked-sessions.ts).
    this.addSql("create index sessions_revoke_time_idx on sessions (revoke_time) where revoke_time is not null");
    // The pruner deletes sessions a day after they ended (src/ops/prune-statements.ts).
    this.addSql("create index sessions_expire_time_idx on sessions (expire_time)");
    this.addSql(`
      insert into sessions (id, user_id, create_time, last_refresh_time, expire_time, max_expire_time, revoke_time)
      select family_id, min(user_id::text)::uuid, min(create_time), max(create_time),
             least(max(expire_time), min(create_time) + interval '90 days'),
             min(create_time) + interval '90 days', max(revoke_time)
      from refresh_tokens group by family_id`);
    this.addSql("alter table login_failures add column attempt_times timestamptz[] not null default '{}'");
  }

  override down(): void {
    this.addSql("alter table login_failures drop column attempt_times");
    this.addSql("drop table sessions");
  }
}
