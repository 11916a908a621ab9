import { Migration } from "@mikro-orm/migrations";

/** Login failures per email, for the brute-force lockout (shared by every replica). */
export class Migration20261122000200 extends Migration {
  override up(): void {
    this.addSql(`
      create table login_failures (
        email_key text primary key,
        attempts integer not null,
        locked_until timestamptz,
        update_time timestamptz not null default now()
      )`);
  }

  override down(): void {
    this.addSql("drop table login_failures");
  }
}
