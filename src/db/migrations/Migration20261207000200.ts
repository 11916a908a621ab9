import { Migration } from "@mikro-orm/migrations";

/**
 * Publishers of the event log to a broker (docs/nats.md): where each has got to, and which replica publishes
 * now. `cursor_seq` is the seq of the last event the broker confirmed (with `cursor_time`, that event's time,
 * for the lag metric); the lease (`lease_owner` until `lease_until`, on the database's clock) lets one
 * replica at a time publish, and every cursor update is fenced on the owner.
 *
 * The NATS publisher starts after the newest event numbered when this runs: events before it were history
 * only (as for the auth events numbered by Migration20261207000000), so enabling NATS_URL later publishes
 * every event since the feature existed (as far as AUDIT_RETENTION has kept them), not the whole past.
 */
export class Migration20261207000200 extends Migration {
  override up(): void {
    this.addSql(`
      create table event_publishers (
        name text primary key,
        cursor_seq bigint not null default 0,
        cursor_time timestamptz,
        lease_owner text,
        lease_until timestamptz
      )`);
    this.addSql(`
      insert into event_publishers (name, cursor_seq)
      values ('nats', coalesce(greatest((select max(seq) from user_changes), (select max(seq) from auth_events)), 0))`);
  }

  override down(): void {
    this.addSql("drop table event_publishers");
  }
}
