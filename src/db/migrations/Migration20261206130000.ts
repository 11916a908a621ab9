import { Migration } from "@mikro-orm/migrations";

/**
 * API keys (issue 15, docs/adr/0019-api-keys.md): long-lived credentials of one user, the secret stored only as
 * its SHA-256 hash. Deletion is soft (`delete_time`) so that every replica's poll of `update_time` sees it; the
 * pruner removes a row a day after its deletion. `last_used_time` is written in batches without touching
 * `update_time`, so use does not wake the replicas' polls.
 */
export class Migration20261206130000 extends Migration {
  override up(): void {
    this.addSql(`
      create table api_keys (
        id uuid primary key,
        user_id uuid not null references users (id) on delete cascade,
        display_name text not null,
        -- The first characters of the secret (usk_ + 8), to recognise it; never enough to use it.
        prefix text not null,
        -- SHA-256 of the secret (256 random bits: a fast hash is enough, see the ADR).
        secret_hash bytea not null unique,
        create_time timestamptz not null,
        expire_time timestamptz,
        last_used_time timestamptz,
        delete_time timestamptz,
        -- Moved by every change a replica must learn (creation, deletion): src/auth/api-key-registry.ts polls it.
        update_time timestamptz not null
      )`);
    // ListApiKeys (newest first) and the per-user cap count a user's live keys.
    this.addSql("create index api_keys_user_idx on api_keys (user_id, create_time desc) where delete_time is null");
    // Every replica asks twice a second which keys changed lately.
    this.addSql("create index api_keys_update_time_idx on api_keys (update_time)");
    // The pruner deletes a key a day after its deletion (src/app/prune-statements.ts).
    this.addSql("create index api_keys_delete_time_idx on api_keys (delete_time) where delete_time is not null");
  }

  override down(): void {
    this.addSql("drop table api_keys");
  }
}
