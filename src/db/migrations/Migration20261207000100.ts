import { Migration } from "@mikro-orm/migrations";

/**
 * Webhooks (issue 16, docs/webhooks.md): the endpoints every user change and auth event is pushed to, and
 * their delivery attempts. Each endpoint row carries its own cursor (the seq of the last event delivered or
 * skipped, src/events/event-log.ts), the retry state of the event at its head, and the lease that lets one
 * replica at a time deliver to it (src/events/webhooks/dispatcher.ts).
 */
export class Migration20261207000100 extends Migration {
  override up(): void {
    this.addSql(`
      create table webhooks (
        id uuid primary key,
        url text not null,
        -- Wire names (user.updated, auth.login_failed); empty means every type.
        event_types text[] not null,
        description text not null,
        -- The signing secret under AES-256-GCM (iv | tag | ciphertext, the id as associated data): it must be
        -- usable to sign, so it cannot be hashed; a database dump alone does not give it away.
        secret_sealed bytea not null,
        state text not null check (state in ('active', 'disabled')),
        create_time timestamptz not null,
        -- Every event up to cursor_seq is delivered (or not of a wanted type); cursor_time is that event's time.
        cursor_seq bigint not null,
        cursor_time timestamptz not null,
        -- Failed attempts at the event after the cursor, when to try it again, since when it fails.
        attempt integer not null default 0,
        next_attempt_time timestamptz not null,
        failing_since timestamptz,
        -- The replica delivering to it, until when (renewed while it delivers).
        lease_owner uuid,
        lease_until timestamptz
      )`);
    // The dispatcher claims due endpoints; ListWebhooks lists oldest first.
    this.addSql("create index webhooks_due_idx on webhooks (next_attempt_time) where state = 'active'");
    this.addSql("create index webhooks_create_time_idx on webhooks (create_time, id)");
    this.addSql(`
      create table webhook_deliveries (
        id bigint generated always as identity primary key,
        webhook_id uuid not null references webhooks (id) on delete cascade,
        event_id text not null,
        event_type text not null,
        attempt integer not null,
        -- 0 when the endpoint did not answer.
        status_code integer not null,
        -- Empty on success.
        error text not null,
        time timestamptz not null,
        next_attempt_time timestamptz
      )`);
    // ListWebhookDeliveries pages newest first per endpoint (id order is insertion order); the pruner by time.
    this.addSql("create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, id desc)");
    this.addSql("create index webhook_deliveries_time_idx on webhook_deliveries (time)");
  }

  override down(): void {
    this.addSql("drop table webhook_deliveries");
    this.addSql("drop table webhooks");
  }
}
