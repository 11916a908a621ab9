/**
 * user.v1.UserService/ListUserChanges: the change log read as history (docs/adr/0022, docs/history.md),
 * newest first by (change_time, seq), keyset-paged. change_time is set by the sequencer with the seq, under
 * its lock, so the two orders agree; ordering by time lets a `time` filter be an index range. An admin lists anyone's changes or everyone's (no user_id); a user its
 * own (the proto's ADMIN_OR_SELF on user_id, enforced by the auth interceptor, and checked again here).
 * Rows are kept for AUDIT_RETENTION; a row's resume token is the one WatchUsers gave for it, which expires
 * with CHANGE_LOG_RETENTION (the watch's horizon), not with the row.
 */
import type { HandlerContext } from "@connectrpc/connect";
import type pg from "pg";
import type { ListUserChangesRequest, ListUserChangesResponse } from "../../../gen/user/v1/user_service_pb.js";
import { sequenceChanges } from "../../changes/change-log.ts";
import { kCaller } from "../../rpc/context.ts";
import { ServiceError } from "../../rpc/errors.ts";
import { toSql } from "../list/index.ts";
import { type HistoryFilter, historyFilterSql, parseHistoryFilter } from "./history-filter.ts";
import type { HistoryCursor, HistoryPageTokens } from "./history-page-token.ts";
import { toUserChange, USER_CHANGE_COLUMNS, type UserChangeRow } from "./user-change.message.ts";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;
/** At most this many changes numbered by a first page (the feed's poll numbers the rest of a backlog). */
const SEQUENCE_BATCH = 10_000;

/** A row with change_time to the microsecond, for the cursor. */
type HistoryRow = UserChangeRow & { position: string };

/** One page of history: up to `size + 1` rows after `after`, newest first. */
async function readPage(
  pool: pg.Pool,
  q: { userId: string; filter: HistoryFilter; after: HistoryCursor | null; size: number },
): Promise<HistoryRow[]> {
  const { sql, params } = toSql(
    (p) => `select ${USER_CHANGE_COLUMNS},
        to_char(change_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as position
      from user_changes
      where seq is not null
        and ${q.userId ? `user_id = ${p.add(q.userId)}::uuid` : "true"}
        and ${q.after ? `(change_time, seq) < (${p.add(q.after.time)}::timestamptz, ${p.add(q.after.seq)}::bigint)` : "true"}
        and ${historyFilterSql(q.filter, p)}
      order by change_time desc, seq desc limit ${p.add(q.size + 1)}`,
  );
  return (await pool.query<HistoryRow>(sql, params)).rows;
}

/** Builds the handler. */
export function createListUserChanges(deps: { pool: pg.Pool; pageTokens: HistoryPageTokens }) {
  return async function listUserChanges(
    req: ListUserChangesRequest,
    ctx: HandlerContext,
  ): Promise<Omit<ListUserChangesResponse, "$typeName"> | ListUserChangesResponse> {
    const caller = ctx.values.get(kCaller);
    if (!caller) throw new ServiceError("UNAUTHENTICATED", "not authenticated");
    // The proto's ADMIN_OR_SELF already refused this; a history is never read on that alone.
    if (!caller.admin && req.userId.toLowerCase() !== caller.userId.toLowerCase()) {
      throw new ServiceError("PERMISSION_DENIED", "you may only list the changes of your own user");
    }
    const listing = { userId: req.userId.toLowerCase(), filter: parseHistoryFilter(req.filter) };
    const after = deps.pageTokens.decode(listing, req.pageToken);
    const size = req.pageSize <= 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
    // A write's change is numbered right after its commit, but the write may answer first: numbering what is
    // committed (a no-op when the writer's poke got there, or waiting for the sequencer that is at it) lets a
    // caller read its own write, with its seq and resume token, on the first page.
    if (after === null) await sequenceChanges(deps.pool, true, SEQUENCE_BATCH);
    const rows = await readPage(deps.pool, { ...listing, after, size });
    const page = rows.slice(0, size);
    const last = page[page.length - 1];
    return {
      changes: page.map(toUserChange),
      nextPageToken:
        rows.length > size ? deps.pageTokens.encode(listing, { time: last.position, seq: Number(last.seq) }) : "",
    };
  };
}
