import { Migration } from "@mikro-orm/migrations";

/**
 * Every replica asks twice a second which sessions were revoked lately (src/auth/revoked-sessions.ts):
 * a partial index keeps that a short range scan however many refresh tokens there are.
 */
export class Migration20261122000500 extends Migration {
  override up(): void {
    this.addSql(
      "create index refresh_tokens_revoke_time_idx on refresh_tokens (revoke_time) where revoke_time is not null",
    );
  }

  override down(): void {
    this.addSql("drop index refresh_tokens_revoke_time_idx");
  }
}
