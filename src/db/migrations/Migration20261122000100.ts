import { Migration } from "@mikro-orm/migrations";

/**
 * The change log: one row per committed write to a user, the single source for WatchUsers, token
 * revocation and the audit trail. `seq` is taken under a transaction-scoped advisory lock held until
 * commit (see src/changes/change-log.ts), so sequence order is commit order and a reader that has seen N
 * can never later find a smaller number appear.
 */
export class Migration20261122000100 extends Migration {
  override up(): void {
    this.addSql("create sequence user_changes_seq");
    this.addSql(`
      create table user_changes (
        seq bigint primary key,
        user_id uuid not null,
        type text not null check (type in ('created', 'updated', 'deleted', 'undeleted')),
        change_time timestamptz not null default clock_timestamp(),
        -- The user after the change, and before it (null on create); never the password hash. Watchers with a
        -- filter see a change when either matches, so a user leaving the filter is seen leaving.
        snapshot jsonb not null,
        previous jsonb,
        -- Access tokens of the user issued before this instant are revoked (suspension, deletion, password change).
        revoke_before timestamptz
      )`);
    this.addSql("create index user_changes_change_time_idx on user_changes (change_time)");
    // The highest seq pruned so far: resume tokens at or below it are expired.
    this.addSql(
      "create table user_changes_horizon (id boolean primary key default true check (id), pruned_seq bigint not null)",
    );
    this.addSql("insert into user_changes_horizon (pruned_seq) values (0)");
  }

  override down(): void {
    this.addSql("drop table user_changes_horizon");
    this.addSql("drop table user_changes");
    this.addSql("drop sequence user_changes_seq");
  }
}
