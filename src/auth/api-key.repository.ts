/**
 * The `api_keys` table, in raw SQL over the query pool. Secrets never reach it: only their SHA-256 hashes
 * (api-key-secret.ts). Every change a replica must learn (a creation, a deletion) moves `update_time`, which
 * the registry polls (api-key-registry.ts); the batched `last_used_time` writes leave it alone.
 */
import { randomUUID } from "node:crypto";
import type pg from "pg";

/** A key as ListApiKeys shows it. */
export interface ApiKeyRecord {
  id: string;
  userId: string;
  displayName: string;
  prefix: string;
  createTime: Date;
  expireTime: Date | null;
  lastUsedTime: Date | null;
}

/** A key as the registry holds it: what authenticating a call needs, and whether it still exists. */
export interface ApiKeyState {
  id: string;
  userId: string;
  /** SHA-256 of the secret, base64url. */
  hash: string;
  createTime: Date;
  expireTime: Date | null;
  deleteTime: Date | null;
}

/** The outcome of a creation. */
export type Created = { ok: true; key: ApiKeyRecord; state: ApiKeyState } | { ok: false; why: "no-user" | "limit" };

interface Row {
  id: string;
  user_id: string;
  display_name: string;
  prefix: string;
  secret_hash: Buffer;
  create_time: Date;
  expire_time: Date | null;
  last_used_time: Date | null;
  update_time: Date;
  delete_time: Date | null;
}

const recordOf = (r: Row): ApiKeyRecord => ({
  id: r.id,
  userId: r.user_id,
  displayName: r.display_name,
  prefix: r.prefix,
  createTime: r.create_time,
  expireTime: r.expire_time,
  lastUsedTime: r.last_used_time,
});

const stateOf = (r: Row): ApiKeyState => ({
  id: r.id,
  userId: r.user_id,
  hash: r.secret_hash.toString("base64url"),
  createTime: r.create_time,
  expireTime: r.expire_time,
  deleteTime: r.delete_time,
});

const STATE_COLUMNS = "id, user_id, secret_hash, create_time, expire_time, delete_time";

/** Keys read by a replica, and the database's `now()` of the read (where the next poll starts from). */
export interface Polled {
  keys: ApiKeyState[];
  at: Date;
}

/** The keys matching `where`, with the time of the read (a row even when no key matches). */
async function polled(pool: pg.Pool, name: string, where: string, values: unknown[]): Promise<Polled> {
  const { rows } = await pool.query<Row & { polled_at: Date }>({
    name,
    text: `with k as (select ${STATE_COLUMNS} from api_keys where ${where})
           select now() as polled_at, k.* from (select) as one left join k on true`,
    values,
  });
  return { keys: rows.filter((r) => r.id !== null).map(stateOf), at: rows[0].polled_at };
}

/** Builds the repository over the query pool. */
export function createApiKeyRepository(pool: pg.Pool) {
  return {
    /**
     * Creates a key for a user that is not deleted and has fewer than `max` live keys. The user's row is
     * locked first, so concurrent creations for one user count one after the other (the cap holds) and a
     * creation racing DeleteUser either commits first or sees the user deleted.
     */
    async create(input: {
      userId: string;
      displayName: string;
      prefix: string;
      hash: string;
      expireTime: Date | null;
      max: number;
    }): Promise<Created> {
      const client = await pool.connect();
      try {
        await client.query("begin");
        const user = await client.query("select 1 from users where id = $1 and state <> 'deleted' for no key update", [
          input.userId,
        ]);
        if (user.rowCount === 0) {
          await client.query("rollback");
          return { ok: false, why: "no-user" };
        }
        const count = await client.query<{ n: number }>(
          "select count(*)::int as n from api_keys where user_id = $1 and delete_time is null",
          [input.userId],
        );
        if (count.rows[0].n >= input.max) {
          await client.query("rollback");
          return { ok: false, why: "limit" };
        }
        const { rows } = await client.query<Row>(
          `insert into api_keys (id, user_id, display_name, prefix, secret_hash, create_time, expire_time, update_time)
           values ($1, $2, $3, $4, $5, now(), $6, now()) returning *`,
          [
            randomUUID(),
            input.userId,
            input.displayName,
            input.prefix,
            Buffer.from(input.hash, "base64url"),
            input.expireTime,
          ],
        );
        await client.query("commit");
        return { ok: true, key: recordOf(rows[0]), state: stateOf(rows[0]) };
      } catch (err) {
        await client.query("rollback").catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },

    /** A user's keys that are not deleted, newest first. */
    async list(userId: string): Promise<ApiKeyRecord[]> {
      const { rows } = await pool.query<Row>({
        name: "api-keys-list",
        text: `select * from api_keys where user_id = $1 and delete_time is null
               order by create_time desc, id desc`,
        values: [userId],
      });
      return rows.map(recordOf);
    },

    /** Soft-deletes a user's key; undefined when the user has no such live key. */
    async delete(userId: string, keyId: string): Promise<ApiKeyState | undefined> {
      const { rows } = await pool.query<Row>(
        `update api_keys set delete_time = now(), update_time = now()
         where id = $1 and user_id = $2 and delete_time is null
         returning ${STATE_COLUMNS}`,
        [keyId, userId],
      );
      return rows[0] && stateOf(rows[0]);
    },

    /** Every key that is not deleted (a replica's start), and the database's time of the read. */
    async live(): Promise<Polled> {
      return polled(pool, "api-keys-live", "delete_time is null", []);
    },

    /** Every key (deleted ones included) whose update_time is after `since` (a replica's poll), and the time. */
    async changedSince(since: Date): Promise<Polled> {
      return polled(pool, "api-keys-changed", "update_time > $1", [since]);
    },

    /** Records when keys were last used, in one statement; update_time is left alone (nothing to tell replicas). */
    async markUsed(uses: ReadonlyMap<string, number>): Promise<void> {
      if (uses.size === 0) return;
      await pool.query({
        name: "api-keys-used",
        text: `update api_keys k set last_used_time = u.t
               from unnest($1::uuid[], $2::timestamptz[]) as u(id, t)
               where k.id = u.id and (k.last_used_time is null or k.last_used_time < u.t)`,
        values: [[...uses.keys()], [...uses.values()].map((ms) => new Date(ms))],
      });
    },
  };
}

/** The repository. */
export type ApiKeyRepository = ReturnType<typeof createApiKeyRepository>;
