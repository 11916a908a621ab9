import { Migration } from "@mikro-orm/migrations";

/**
 * ListSessions and ListUserSessions (issue 15, docs/adr/0020-session-management.md): a user's unrevoked
 * sessions, newest first, by keyset `(create_time, id) < cursor`. The index holds only unrevoked sessions
 * (a revoked row stays until the pruner removes it a day after its expiry, and a client that logs in and out
 * often has many), in the listing's order, so a page reads its rows and no more. It also serves revoking every
 * session of a user (`revoke_time is null`). `sessions_user_idx` stays for the foreign key's cascade.
 */
export class Migration20261206110000 extends Migration {
  override up(): void {
    this.addSql(`create index sessions_user_live_idx on sessions (user_id, create_time desc, id desc)
      where revoke_time is null`);
  }

  override down(): void {
    this.addSql("drop index sessions_user_live_idx");
  }
}
