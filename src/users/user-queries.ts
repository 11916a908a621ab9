/**
 * ListUsers and StreamUsers: the filter, order and keyset pieces of ./list turned into single parameterized
 * statements on the raw pg pool. ListUsers pages by keyset (a user created or deleted between pages never
 * makes another one skipped or repeated); StreamUsers walks the table in id order, 500 users per message,
 * one page query at a time, so memory stays flat and a slow or gone client stops the reading.
 */
import { ConnectError } from "@connectrpc/connect";
import type pg from "pg";
import type { User } from "../../gen/user/v1/user_pb.js";
import {
  type Cursor,
  createPageTokenCodec,
  cursorFromRow,
  filterSql,
  ID_ORDER,
  keysetSql,
  orderBySql,
  type PageRequest,
  parseFilter,
  parseOrderBy,
  sortKeySelect,
  toSql,
} from "./list/index.ts";
import { toProtoUser } from "./user.mapper.ts";
import { fromRecord, type UserRecord, userColumns } from "./user.record.ts";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;
const STREAM_BATCH = 500;

/** Builds the two handlers' logic. `pageTokenKey` must be the same on every replica (>= 32 bytes). */
export function createUserQueries(deps: { pool: pg.Pool; pageTokenKey: string }) {
  const { pool } = deps;
  const tokens = createPageTokenCodec(deps.pageTokenKey);
  const visible = (showDeleted: boolean) => (showDeleted ? "true" : "delete_time is null");

  return {
    /** One page of users, the next page token and the total number matching. */
    async list(req: { pageSize: number; pageToken: string; filter: string; orderBy: string; showDeleted: boolean }) {
      const request: PageRequest = {
        filter: parseFilter(req.filter),
        orderBy: parseOrderBy(req.orderBy),
        showDeleted: req.showDeleted,
      };
      const cursor = tokens.decode(request, req.pageToken);
      const size = req.pageSize <= 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
      const page = toSql(
        (p) => `select ${userColumns}, ${sortKeySelect(request.orderBy)} from users
          where ${visible(request.showDeleted)} and ${filterSql(request.filter, p)} and ${keysetSql(request.orderBy, cursor, p)}
          order by ${orderBySql(request.orderBy)} limit ${p.add(size + 1)}`,
      );
      const count = toSql(
        (p) =>
          `select count(*) as n from users where ${visible(request.showDeleted)} and ${filterSql(request.filter, p)}`,
      );
      const [rows, total] = await Promise.all([
        pool.query<UserRecord & Record<string, unknown>>(page.sql, page.params),
        pool.query<{ n: string }>(count.sql, count.params),
      ]);
      const more = rows.rows.length > size;
      const users = rows.rows.slice(0, size);
      return {
        users: users.map((r) => toProtoUser(fromRecord(r))),
        nextPageToken: more ? tokens.encode(request, cursorFromRow(request.orderBy, users[users.length - 1])) : "",
        totalSize: Number(total.rows[0].n),
      };
    },

    /** Every matching user exactly once, in id order, in batches. Stops when `signal` aborts. */
    async *stream(req: { filter: string; showDeleted: boolean }, signal: AbortSignal): AsyncGenerator<User[]> {
      const filter = parseFilter(req.filter);
      let cursor: Cursor | null = null;
      while (!signal.aborted) {
        const q = toSql(
          (p) => `select ${userColumns}, ${sortKeySelect(ID_ORDER)} from users
            where ${visible(req.showDeleted)} and ${filterSql(filter, p)} and ${keysetSql(ID_ORDER, cursor, p)}
            order by ${orderBySql(ID_ORDER)} limit ${p.add(STREAM_BATCH)}`,
        );
        const { rows } = await pool.query<UserRecord & Record<string, unknown>>(q.sql, q.params);
        if (rows.length === 0) return;
        yield rows.map((r) => toProtoUser(fromRecord(r)));
        if (rows.length < STREAM_BATCH) return;
        cursor = cursorFromRow(ID_ORDER, rows[rows.length - 1]);
      }
      // Cut short by shutdown or a deadline (not by the client leaving): say so, so the caller retries.
      if (signal.reason instanceof ConnectError) throw signal.reason;
    },
  };
}

/** The list/stream logic. */
export type UserQueries = ReturnType<typeof createUserQueries>;
