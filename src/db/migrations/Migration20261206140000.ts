import { Migration } from "@mikro-orm/migrations";

/**
 * Who made each change, and the change history (docs/adr/0022-actor-and-history.md).
 *
 * Every change-log row records its actor (kind user / api_key / system; null on rows written before: the
 * wire's ACTOR_KIND_UNSPECIFIED) and the names of the User fields it changed, computed by the writer (no
 * JSON diff at read time, and it survives `previous` being dropped). Rows are now kept for AUDIT_RETENTION
 * (ListUserChanges); past CHANGE_LOG_RETENTION the pruner only moves the resume horizon and drops what
 * history does not need (`previous`, kept for watchers' filter matching). History is listed newest first by
 * (change_time, seq): per user with the index below, for everyone with the existing change_time index, and a
 * `time` filter is a range of either.
 */
export class Migration20261206140000 extends Migration {
  override up(): void {
    this.addSql(`alter table user_changes
      add column actor_kind text check (actor_kind in ('user', 'api_key', 'system')),
      add column actor_user_id uuid,
      add column actor_api_key_id uuid,
      add column actor_client_address text,
      add column actor_request_id text,
      add column changed_fields text[]`);
    this.addSql(
      "create index user_changes_user_time_idx on user_changes (user_id, change_time, seq) where seq is not null",
    );
  }

  override down(): void {
    this.addSql("drop index user_changes_user_time_idx");
    this.addSql(`alter table user_changes drop column actor_kind, drop column actor_user_id,
      drop column actor_api_key_id, drop column actor_client_address, drop column actor_request_id,
      drop column changed_fields`);
  }
}
