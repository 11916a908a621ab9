import { Migration } from "@mikro-orm/migrations";

/**
 * Auth events (issue 16, docs/adr/0023-auth-events.md): logins, failures, lockouts, refreshes, revocations,
 * password and API key changes, written in batches off the request path (src/auth/auth-event-recorder.ts)
 * and listed by ListAuthEvents newest first. No foreign keys: an event outlives nothing it names, and a
 * batch insert must never fail for a user deleted meanwhile. Never holds a password, token, code or secret.
 */
export class Migration20261206150000 extends Migration {
  override up(): void {
    this.addSql(`
      create table auth_events (
        -- A UUIDv7 made when the event happened (time-ordered), so a retried batch inserts nothing twice.
        id uuid primary key,
        -- The AuthEventType name without its prefix (LOGIN_FAILED).
        type text not null,
        time timestamptz not null,
        user_id uuid,
        client_address text,
        user_agent text,
        session_id uuid,
        -- The email a Login or ResetPassword named, as typed (bounded).
        email text
      )`);
    // ListAuthEvents pages newest first, all users or one (user_id = ...); the pruner deletes by time.
    this.addSql("create index auth_events_time_idx on auth_events (time desc, id desc)");
    this.addSql("create index auth_events_user_time_idx on auth_events (user_id, time desc, id desc)");
  }

  override down(): void {
    this.addSql("drop table auth_events");
  }
}
