import { Migration } from "@mikro-orm/migrations";

/**
 * The change log: one row per committed write to a user, the single source for WatchUsers, token
 * revocation and the audit trail.
 *
 * `seq` is the order readers follow, and it must be commit order: a sequence value taken at insert could
 * commit after a larger one, and a reader that has seen 12 would then miss 11 forever. So rows are
 * inserted without a seq, and a deferred constraint trigger assigns it while the transaction commits,
 * under a transaction-scoped advisory lock that is released when the commit completes. Appends are thereby
 * serialised only for the duration of the commit itself, inside PostgreSQL: the lock is never held across
 * a round trip to a client whose event loop may be busy (the first version took the lock from the client
 * and saw writes queue behind it under 1,000 watchers). NOTIFY is sent there too, delivered on commit.
 */
export class Migration20261122000100 extends Migration {
  override up(): void {
    this.addSql("create sequence user_changes_seq");
    this.addSql(`
      create table user_changes (
        id bigint generated always as identity primary key,
        -- Assigned at commit by user_changes_assign_seq(); never null once committed.
        seq bigint unique,
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
    this.addSql(`
      create function user_changes_assign_seq() returns trigger language plpgsql as $$
      begin
        -- 0x75736572 ("user"): the one lock that orders every append.
        perform pg_advisory_xact_lock(1970496882);
        update user_changes set seq = nextval('user_changes_seq'), change_time = clock_timestamp() where id = new.id;
        perform pg_notify('user_changes', '');
        return null;
      end $$`);
    this.addSql(`
      create constraint trigger user_changes_seq_at_commit after insert on user_changes
      deferrable initially deferred for each row execute function user_changes_assign_seq()`);
    // The highest seq pruned so far: resume tokens at or below it are expired.
    this.addSql(
      "create table user_changes_horizon (id boolean primary key default true check (id), pruned_seq bigint not null)",
    );
    this.addSql("insert into user_changes_horizon (pruned_seq) values (0)");
  }

  override down(): void {
    this.addSql("drop table user_changes_horizon");
    this.addSql("drop trigger user_changes_seq_at_commit on user_changes");
    this.addSql("drop function user_changes_assign_seq()");
    this.addSql("drop table user_changes");
    this.addSql("drop sequence user_changes_seq");
  }
}
