import { Migration } from "@mikro-orm/migrations";

/**
 * One order for every outbound event (docs/adr/0024-event-delivery.md): auth events get a `seq` from the
 * change log's sequence, given by the same sequencer under the same lock (Migration20261206001600), so
 * "every event after seq N" over both tables is exact, as it is for the change log alone. A pass numbers
 * the committed user changes first, then the committed auth events, each in id order (auth event ids are
 * UUIDv7: record order), and sends one NOTIFY if it numbered anything. It returns the larger of the two
 * counts, so a caller looping while a full batch comes keeps going while either table has a backlog.
 */
export class Migration20261207000000 extends Migration {
  override up(): void {
    this.addSql("alter table auth_events add column seq bigint");
    this.addSql("create index auth_events_unsequenced_idx on auth_events (id) where seq is null");
    this.addSql("create unique index auth_events_seq_idx on auth_events (seq)");
    // Events recorded before this migration are history only: they were never outbound, so they are numbered
    // now, in id order, below everything to come (no endpoint or publisher exists yet to be sent them).
    this.addSql(`
      update auth_events e set seq = n.seq
      from (select id, nextval('user_changes_seq') as seq from (select id from auth_events order by id) t) n
      where e.id = n.id`);
    this.addSql(`
      create or replace function user_changes_sequence(wait boolean, batch integer) returns integer
      language plpgsql volatile as $$
      declare
        n integer;
        m integer;
      begin
        -- 0x75736572 ("user"): the one lock that orders the log and the auth events.
        if wait then
          perform pg_advisory_xact_lock(1970496882);
        elsif not pg_try_advisory_xact_lock(1970496882) then
          return null;
        end if;
        -- New statements, so new snapshots: taken after the lock. nextval runs over the ordered subqueries,
        -- row by row in id order (it must not be evaluated before a sort).
        with numbered as (
          select t.id, nextval('user_changes_seq') as seq
          from (select id from user_changes where seq is null order by id limit batch) t
        )
        update user_changes c set seq = numbered.seq, change_time = clock_timestamp() from numbered where c.id = numbered.id;
        get diagnostics n = row_count;
        with numbered as (
          select t.id, nextval('user_changes_seq') as seq
          from (select id from auth_events where seq is null order by id limit batch) t
        )
        update auth_events e set seq = numbered.seq from numbered where e.id = numbered.id;
        get diagnostics m = row_count;
        if n + m > 0 then
          perform pg_notify('user_changes', '');
        end if;
        return greatest(n, m);
      end $$`);
  }

  override down(): void {
    this.addSql(`
      create or replace function user_changes_sequence(wait boolean, batch integer) returns integer
      language plpgsql volatile as $$
      declare
        n integer;
      begin
        if wait then
          perform pg_advisory_xact_lock(1970496882);
        elsif not pg_try_advisory_xact_lock(1970496882) then
          return null;
        end if;
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
    this.addSql("drop index auth_events_seq_idx");
    this.addSql("drop index auth_events_unsequenced_idx");
    this.addSql("alter table auth_events drop column seq");
  }
}
