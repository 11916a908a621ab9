import { Migration } from "@mikro-orm/migrations";

/**
 * Indexes for the pruner (src/ops/prune-statements.ts): each batch looks for expired rows by these
 * columns, and without an index every batch (and every round, once a minute) would scan the whole table.
 */
export class Migration20261205000900 extends Migration {
  override up(): void {
    this.addSql("create index if not exists refresh_tokens_expire_time_idx on refresh_tokens (expire_time)");
    this.addSql("create index if not exists idempotency_keys_create_time_idx on idempotency_keys (create_time)");
    this.addSql("create index if not exists login_failures_update_time_idx on login_failures (update_time)");
  }

  override down(): void {
    this.addSql("drop index if exists login_failures_update_time_idx");
    this.addSql("drop index if exists idempotency_keys_create_time_idx");
    this.addSql("drop index if exists refresh_tokens_expire_time_idx");
  }
}
