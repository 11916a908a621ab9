/**
 * What the pruner (pruner.ts) deletes, table by table, and why each row is no longer needed. To prune
 * another table, add a statement here. Batches pick rows by `ctid` and delete exactly those row versions:
 * a row updated meanwhile (a login failure counted again) has a new version, which is left alone.
 */
import { MAX_CODE_ATTEMPTS } from "../auth/one-time-codes.ts";
import { changeLogStatements } from "../changes/change-pruner.ts";
import type { PruneStatement } from "../ops/pruner.ts";

/** Deletes at most $1 rows of `table` matching `where`, in one statement. */
function batchOf(table: string, where: string, values: unknown[] = []): PruneStatement {
  return {
    table,
    sql: `delete from ${table} where ctid = any(array(select ctid from ${table} where ${where} limit $1))`,
    values,
  };
}

/** How long a CreateUser request_id is remembered: a retry after that creates a second user. */
export const IDEMPOTENCY_KEY_TTL = "24 hours";

/** How long webhook delivery attempts are kept, at most: 7 days. */
const WEBHOOK_DELIVERY_RETENTION_S = 7 * 24 * 3600;

/** Every prune statement of the service. */
export function pruneStatements(opts: { changeLogRetentionMs: number; auditRetentionMs: number }): PruneStatement[] {
  return [
    // The change log: past CHANGE_LOG_RETENTION resume tokens are RESUME_TOKEN_EXPIRED and `previous` is
    // dropped; past AUDIT_RETENTION (history) the row is deleted (docs/adr/0022).
    ...changeLogStatements(opts),
    // A refresh token past its expiry can never be used again; a day's margin keeps a replayed one recognised
    // (and its family revoked) for a while after it ends.
    batchOf("refresh_tokens", "expire_time < now() - interval '1 day'"),
    // A session a day past its end (idle or absolute: expire_time never exceeds max_expire_time): its refresh
    // tokens are past theirs (pruned with the same margin), and its access tokens, issued at the latest at
    // that end and living ACCESS_TOKEN_TTL, have expired, so no replica needs its revocation any more.
    batchOf("sessions", "expire_time < now() - interval '1 day'"),
    // A deleted API key: every replica's poll has seen its deletion long before (docs/adr/0019-api-keys.md).
    batchOf("api_keys", "delete_time < now() - interval '1 day'"),
    // CreateUser retries come within minutes (AIP-155); a key a day old protects nothing.
    batchOf("idempotency_keys", `create_time < now() - interval '${IDEMPOTENCY_KEY_TTL}'`),
    // No attempt in the last hour (the lockout's window is 15 minutes) and no lock in force: the row counts
    // nothing any more. (A lock is set by an attempt and lasts 15 minutes, so it has ended too; checked anyway.)
    batchOf(
      "login_failures",
      "update_time < now() - interval '1 hour' and (locked_until is null or locked_until < now())",
    ),
    // A one-time code used, expired or dead (its wrong tries spent) works no more, and a missing row reads
    // exactly the same to a caller (INVALID_CODE): nothing is kept for later.
    batchOf("one_time_codes", "used_time is not null or expire_time < now() or attempts >= $2", [MAX_CODE_ATTEMPTS]),
    // Auth events past AUDIT_RETENTION (docs/adr/0023-auth-events.md); auth_events_time_idx finds them.
    batchOf("auth_events", "time < now() - make_interval(secs => $2::double precision / 1000)", [
      opts.auditRetentionMs,
    ]),
    // Webhook delivery attempts: a week is enough to tell what an endpoint was sent and how it answered
    // (docs/webhooks.md), and never longer than the events themselves are kept (AUDIT_RETENTION).
    batchOf(
      "webhook_deliveries",
      "time < now() - make_interval(secs => least($2::double precision / 1000, $3::double precision))",
      [opts.auditRetentionMs, WEBHOOK_DELIVERY_RETENTION_S],
    ),
  ];
}
