/**
 * The reads of the PostgreSQL user store, on the raw pg pool with prepared statements (a MikroORM fork per
 * read cost ~4x the CPU: docs/adr/0004). Lists page by keyset (a user created or deleted between pages never
 * makes another one skipped or repeated); streams and the watch snapshot walk the table in id order, one
 * page query at a time, so memory stays flat and a slow or gone reader stops the reading.
 */
import type pg from "pg";
import { logPosition } from "../../changes/change-feed.ts";
import {
  type Cursor,
  cursorFromRow,
  type Filter,
  filterSql,
  ID_ORDER,
  keysetSql,
  orderBySql,
  sortKeySelect,
  toSql,
} from "../list/index.ts";
import {
  compactFromWarmRecord,
  type UserRecord,
  userColumns,
  userFromRecord,
  type WarmRecord,
} from "../user.record.ts";
import type { User } from "../user.ts";
import type { CompactUser } from "../user-cache.columns.ts";
import type { Page, PageQuery, SnapshotPage } from "../user-store.ts";
import { createConnectionShare, longHeldShare } from "./connection-share.ts";

const STREAM_BATCH = 500;

type SortedRecord = UserRecord & Record<string, unknown>;

const visible = (showDeleted: boolean) => (showDeleted ? "true" : "delete_time is null");

/** A page of users in id order after `cursor`, not deleted unless `showDeleted`, matching `filter`. */
const idOrderPage = (filter: Filter | null, showDeleted: boolean, cursor: Cursor | null, limit: number) =>
  toSql(
    (p) => `select ${userColumns}, ${sortKeySelect(ID_ORDER)} from users
      where ${visible(showDeleted)} and ${filterSql(filter, p)} and ${keysetSql(ID_ORDER, cursor, p)}
      order by ${orderBySql(ID_ORDER)} limit ${p.add(limit)}`,
  );

/**
 * Warming reads instants as epoch ms (floored, as a Date parsed from the timestamp would be), so 100,000
 * users make no Date objects: less garbage at start-up, when the process sets its first peak.
 */
const ms = (column: string) => `floor(extract(epoch from ${column}) * 1000)::float8 as ${column}`;
const warmSql = `select id, email, display_name, role, state, kind, labels, email_verified, password_change_required,
  version, ${ms("create_time")},
  ${ms("update_time")}, ${ms("delete_time")}, ${ms("tokens_valid_after")}
  from users where id > $2 order by id limit $1`;

/** Builds the reads. */
export function createUserReads(pool: pg.Pool) {
  const snapshots = createConnectionShare(longHeldShare(pool.options.max ?? 10));
  async function findById(id: string): Promise<User | null> {
    const res = await pool.query<UserRecord>({
      name: "user-by-id",
      text: `select ${userColumns} from users where id = $1`,
      values: [id],
    });
    return res.rows[0] ? userFromRecord(res.rows[0]) : null;
  }

  return {
    findById,

    async findByIds(ids: readonly string[]): Promise<User[]> {
      const res = await pool.query<UserRecord>({
        name: "users-by-ids",
        text: `select ${userColumns} from users where id = any($1::uuid[])`,
        values: [[...new Set(ids)]],
      });
      return res.rows.map(userFromRecord);
    },

    /** One page; the count runs (next to the page, on another connection) only when `total` is not known yet. */
    async list({ request, after, size, total }: PageQuery): Promise<Page> {
      const page = toSql(
        (p) => `select ${userColumns}, ${sortKeySelect(request.orderBy)} from users
          where ${visible(request.showDeleted)} and ${filterSql(request.filter, p)} and ${keysetSql(request.orderBy, after, p)}
          order by ${orderBySql(request.orderBy)} limit ${p.add(size + 1)}`,
      );
      const counting = async () => {
        const count = toSql(
          (p) =>
            `select count(*) as n from users where ${visible(request.showDeleted)} and ${filterSql(request.filter, p)}`,
        );
        return Number((await pool.query<{ n: string }>(count.sql, count.params)).rows[0].n);
      };
      const [rows, n] = await Promise.all([pool.query<SortedRecord>(page.sql, page.params), total ?? counting()]);
      const more = rows.rows.length > size;
      const records = rows.rows.slice(0, size);
      return {
        users: records.map(userFromRecord),
        next: more ? cursorFromRow(request.orderBy, records[records.length - 1]) : null,
        total: n,
      };
    },

    async *stream(query: { filter: Filter | null; showDeleted: boolean }, signal: AbortSignal): AsyncGenerator<User[]> {
      let cursor: Cursor | null = null;
      for (;;) {
        signal.throwIfAborted();
        const q = idOrderPage(query.filter, query.showDeleted, cursor, STREAM_BATCH);
        const { rows } = await pool.query<SortedRecord>(q.sql, q.params);
        if (rows.length === 0) return;
        yield rows.map(userFromRecord);
        if (rows.length < STREAM_BATCH) return;
        cursor = cursorFromRow(ID_ORDER, rows[rows.length - 1]);
      }
    },

    async *snapshot(filter: Filter | null): AsyncGenerator<SnapshotPage> {
      // Held from the first page to the last: at most half the pool at once (./connection-share.ts).
      const giveBack = await snapshots.acquire();
      try {
        yield* snapshotOn(filter);
      } finally {
        giveBack();
      }
    },

    /** Up to `limit` users after `afterId` in id order, in the cache's terms (its warm-up). */
    async warmBatch(afterId: string, limit: number): Promise<CompactUser[]> {
      const res = await pool.query<WarmRecord>({ name: "warm-users", text: warmSql, values: [limit, afterId] });
      return res.rows.map(compactFromWarmRecord);
    },
  };

  async function* snapshotOn(filter: Filter | null): AsyncGenerator<SnapshotPage> {
    const client = await pool.connect();
    // Until the commit, the connection is inside the snapshot's transaction: if the reader stops early (a
    // watcher that leaves mid-snapshot) or a query fails, it is closed rather than pooled in that state.
    let open = true;
    try {
      await client.query("begin isolation level repeatable read read only");
      const { seq, unsequenced, snapshot } = await logPosition(client);
      let cursor: Cursor | null = null;
      for (let first = true; ; first = false) {
        const q = idOrderPage(filter, false, cursor, STREAM_BATCH);
        const { rows } = await client.query<SortedRecord>(q.sql, q.params);
        if (rows.length > 0 || first) yield { seq, users: rows.map(userFromRecord), unsequenced, snapshot };
        if (rows.length < STREAM_BATCH) break;
        cursor = cursorFromRow(ID_ORDER, rows[rows.length - 1]);
      }
      await client.query("commit");
      open = false;
    } finally {
      client.release(open);
    }
  }
}
