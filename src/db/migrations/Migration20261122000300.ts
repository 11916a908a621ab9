import { Migration } from "@mikro-orm/migrations";

/**
 * Indexes for ListUsers orders and common filters. The keyset queries order by the expressions below with
 * `collate "C"` and break ties by id (src/users/list/keyset.ts), so each order has a matching index; label
 * equality is `labels @> {k: v}`, which a jsonb_path_ops GIN index serves.
 */
export class Migration20261122000300 extends Migration {
  override up(): void {
    this.addSql("create index users_update_time_id_idx on users (update_time, id)");
    this.addSql('create index users_email_order_idx on users ((lower(email) collate "C"), id)');
    this.addSql('create index users_display_name_order_idx on users ((display_name collate "C"), id)');
    this.addSql("create index users_labels_idx on users using gin (labels jsonb_path_ops)");
    // StreamUsers and the watch snapshot walk live users in id order; without statistics (right after a
    // bulk import) the planner otherwise picked the partial email index and sorted every page (~5x slower).
    this.addSql("create index users_live_id_idx on users (id) where delete_time is null");
  }

  override down(): void {
    this.addSql("drop index users_live_id_idx");
    this.addSql("drop index users_labels_idx");
    this.addSql("drop index users_display_name_order_idx");
    this.addSql("drop index users_email_order_idx");
    this.addSql("drop index users_update_time_id_idx");
  }
}
