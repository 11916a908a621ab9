/**
 * Bulk insert for ImportUsers: one transaction per batch, one multi-row INSERT that skips emails already
 * present (`on conflict ... do nothing` against the partial unique index, which also catches a duplicate
 * earlier in the same batch), and the change-log rows of exactly the users created, appended like every
 * other write's and numbered right after the commit (see src/changes/change-log.ts).
 */
import type pg from "pg";
import { sequenceChanges } from "../../changes/change-log.ts";
import type { Actor } from "../../rpc/actor.ts";
import { snapshotOf } from "../user.snapshot.ts";
import { newUser } from "../user.ts";
import type { ImportedUser } from "../user-store.ts";
import { actorValues } from "./user-writes.ts";

const insertUsers = `
  insert into users (id, email, display_name, role, state, labels, password_hash, version, create_time, update_time)
  select u.id, u.email, u.display_name, u.role, 'active', u.labels, u.password_hash, 1, $7, $7
  from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
    as u(id, email, display_name, role, labels, password_hash)
  on conflict (lower(email)) where delete_time is null do nothing
  returning id`;

// Seqs are assigned after the commit, in insertion (id) order, by the change log's sequencer.
const insertChanges = `
  insert into user_changes (user_id, type, snapshot, actor_kind, actor_user_id, actor_api_key_id,
    actor_client_address, actor_request_id, changed_fields)
  select s.id, 'created', s.snapshot, $3, $4::uuid, $5::uuid, $6, $7, $8::text[]
  from unnest($1::uuid[], $2::jsonb[]) with ordinality as s(id, snapshot, n)
  order by s.n`;

/** Inserts a batch; returns the ids created (the others were skipped as already present). */
export async function insertImportBatch(
  pool: pg.Pool,
  rows: readonly ImportedUser[],
  actor?: Actor,
): Promise<Set<string>> {
  const client = await pool.connect();
  let committed: Set<string>;
  try {
    await client.query("begin");
    const now = new Date();
    const res = await client.query<{ id: string }>(insertUsers, [
      rows.map((r) => r.id),
      rows.map((r) => r.email),
      rows.map((r) => r.displayName),
      rows.map((r) => r.role),
      rows.map((r) => JSON.stringify(r.labels)),
      rows.map((r) => r.passwordHash),
      now,
    ]);
    const created = new Set(res.rows.map((r) => r.id));
    if (created.size > 0) {
      const made = rows.filter((r) => created.has(r.id));
      const users = made.map((r) => snapshotOf(newUser(r.id, r, now)));
      // The same actor and changed fields (every field: creations) for the whole batch.
      const who = actorValues(actor, "", null, users[0]);
      await client.query(insertChanges, [made.map((r) => r.id), users.map((u) => JSON.stringify(u)), ...who]);
    }
    await client.query("commit");
    committed = created;
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
  // Numbered now rather than at the next poll of some change feed. The batch is committed whatever happens
  // here: a failure (the database went away) is left to the feeds' poll, which numbers it then.
  if (committed.size > 0) await sequenceChanges(pool, true, 10_000).catch(() => null);
  return committed;
}
