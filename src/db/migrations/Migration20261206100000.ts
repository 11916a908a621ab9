import { Migration } from "@mikro-orm/migrations";

/**
 * Issue 15, the users' side: service accounts (`kind`), verified email, and an admin's "change your password"
 * flag. Columns with constant defaults: PostgreSQL adds them without rewriting the table.
 */
export class Migration20261206100000 extends Migration {
  override up(): void {
    this.addSql(`alter table users
      add column if not exists kind text not null default 'human' check (kind in ('human', 'service')),
      add column if not exists email_verified boolean not null default false,
      add column if not exists password_change_required boolean not null default false`);
  }

  override down(): void {
    this.addSql(`alter table users drop column if exists password_change_required,
      drop column if exists email_verified, drop column if exists kind`);
  }
}
