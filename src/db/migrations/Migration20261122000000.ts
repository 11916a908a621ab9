import { Migration } from "@mikro-orm/migrations";

/** Users, refresh tokens and idempotency keys. */
export class Migration20261122000000 extends Migration {
  override up(): void {
    this.addSql(`
      create table users (
        id uuid primary key,
        email text not null,
        display_name text not null,
        role text not null check (role in ('user', 'admin')),
        state text not null check (state in ('active', 'suspended', 'deleted')),
        labels jsonb not null default '{}'::jsonb,
        password_hash text,
        version integer not null default 1,
        create_time timestamptz not null,
        update_time timestamptz not null,
        delete_time timestamptz,
        tokens_valid_after timestamptz,
        check ((state = 'deleted') = (delete_time is not null))
      )`);
    // Email is unique case-insensitively among users that are not deleted: deleting frees the address.
    this.addSql("create unique index users_email_live_key on users (lower(email)) where delete_time is null");
    this.addSql("create index users_create_time_id_idx on users (create_time, id)");
    this.addSql(`
      create table refresh_tokens (
        id uuid primary key,
        user_id uuid not null references users (id) on delete cascade,
        family_id uuid not null,
        token_hash bytea not null unique,
        create_time timestamptz not null,
        expire_time timestamptz not null,
        used_time timestamptz,
        revoke_time timestamptz
      )`);
    this.addSql("create index refresh_tokens_family_idx on refresh_tokens (family_id)");
    this.addSql("create index refresh_tokens_user_idx on refresh_tokens (user_id)");
    this.addSql(`
      create table idempotency_keys (
        caller_id uuid not null,
        request_id uuid not null,
        -- Deferred: the key is claimed before the user row it points to is inserted.
        user_id uuid not null references users (id) on delete cascade deferrable initially deferred,
        create_time timestamptz not null default now(),
        primary key (caller_id, request_id)
      )`);
  }

  override down(): void {
    this.addSql("drop table idempotency_keys");
    this.addSql("drop table refresh_tokens");
    this.addSql("drop table users");
  }
}
