import { Migration } from "@mikro-orm/migrations";

/**
 * Indexes for ListUsers filters that scanned the whole table on 1,000,000 users (bench:streams):
 *
 * - `role = ROLE_ADMIN` (a few admins among many users): every page and every total_size count read the
 *   table. A b-tree on role serves the rare value; the planner ignores it for the common one.
 * - `email : "x"` and `display_name : "x"` (contains, `LIKE '%x%'`): trigram GIN indexes (pg_trgm) serve
 *   any substring of 3 characters or more. Creating the extension needs a privilege some managed databases
 *   withhold, or the contrib package: without it these two indexes are skipped (with a notice) and contains
 *   filters scan, as before.
 */
export class Migration20261122000400 extends Migration {
  override up(): void {
    this.addSql("create index users_role_idx on users (role)");
    this.addSql(`do $$
      begin
        create extension if not exists pg_trgm;
      exception when others then
        raise notice 'pg_trgm is not available (%): contains filters on email and display_name will scan', sqlerrm;
      end $$`);
    this.addSql(`do $$
      begin
        if exists (select 1 from pg_extension where extname = 'pg_trgm') then
          create index users_email_trgm_idx on users using gin (lower(email) gin_trgm_ops);
          create index users_display_name_trgm_idx on users using gin (display_name gin_trgm_ops);
        end if;
      end $$`);
  }

  override down(): void {
    this.addSql("drop index if exists users_display_name_trgm_idx");
    this.addSql("drop index if exists users_email_trgm_idx");
    this.addSql("drop index users_role_idx");
  }
}
