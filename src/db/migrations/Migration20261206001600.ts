import { Migration } from "@mikro-orm/migrations";

/**
 * The change log is ordered after commit, not during it (docs/adr/0016-sequencer.md).
 *
 * The commit trigger of Migration20261122000100 held one advisory lock from the start of each writer's
 * COMMIT until the commit was durable (flushed, and applied by a synchronous standby), and its NOTIFY took
 * PostgreSQL's notify-queue lock for the same span: every write in the system committed one at a time.
 * Writers now only insert their row with `seq` null and commit, side by side. `user_changes_sequence()`
 * numbers the committed rows afterwards: under the same lock it takes, in a statement of its own (so under
 * READ COMMITTED its snapshot is taken after the lock, and sees everything the previous sequencer committed),
 * every row still without a seq, in id order, gets the next values of user_changes_seq, and one NOTIFY wakes
 * the listeners. Sequencers are serialised by the lock, which is released only once a sequencer's commit is
 * visible, so seq order is visibility order: "everything after seq N" stays exact for readers. Id order
 * keeps each user's order: a user's next change is inserted only after the previous one committed (the
 * user row lock), so it takes a larger identity.
 *
 * `wait` false tries the lock and returns null when another sequencer holds it (the poll's safety net: the
 * holder numbers whatever is committed). At most `batch` rows per call; the count numbered is returned.
 */
export class Migration20261206001600 extends Migration {
  override up(): void {
    this.addSql("drop trigger user_changes_seq_at_commit on user_changes");
    this.addSql("drop function user_changes_assign_seq()");
    this.addSql("create index user_changes_unsequenced_idx on user_changes (id) where seq is null");
    // The writer's transaction: whether a PostgreSQL snapshot saw the change committed, whatever its seq
    // (WatchUsers' resume tokens after a snapshot). Old rows keep null (no rewrite of the table).
    this.addSql("alter table user_changes add column writer_xid xid8");
    this.addSql("alter table user_changes alter column writer_xid set default pg_current_xact_id()");
    this.addSql(`
      create function user_changes_sequence(wait boolean, batch integer) returns integer
      language plpgsql volatile as $$
      declare
        n integer;
      begin
        -- 0x75736572 ("user"): the one lock that orders the log.
        if wait then
          perform pg_advisory_xact_lock(1970496882);
        elsif not pg_try_advisory_xact_lock(1970496882) then
          return null;
        end if;
        -- A new statement, so a new snapshot: taken after the lock. nextval runs over the ordered subquery,
        -- row by row in id order (it must not be evaluated before a sort).
        with numbered as (
          select t.id, nextval('user_changes_seq') as seq
          from (select id from user_changes where seq is null order by id limit batch) t
        )
        update user_changes c set seq = numbered.seq, change_time = clock_timestamp() from numbered where c.id = numbered.id;
        get diagnostics n = row_count;
        if n > 0 then
          perform pg_notify('user_changes', '');
        end if;
        return n;
      end $$`);
  }

  override down(): void {
    this.addSql("drop function user_changes_sequence(boolean, integer)");
    this.addSql("alter table user_changes drop column writer_xid");
    this.addSql("drop index user_changes_unsequenced_idx");
    this.addSql(`
      create function user_changes_assign_seq() returns trigger language plpgsql as $$
      begin
        perform pg_advisory_xact_lock(1970496882);
        update user_changes set seq = nextval('user_changes_seq'), change_time = clock_timestamp() where id = new.id;
        perform pg_notify('user_changes', '');
        return null;
      end $$`);
    this.addSql(`
      create constraint trigger user_changes_seq_at_commit after insert on user_changes
      deferrable initially deferred for each row execute function user_changes_assign_seq()`);
  }
}
