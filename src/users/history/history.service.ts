/**
 * user.v1.UserService/ListUserChanges: the change log read as history (docs/adr/0022, docs/history.md),
 * newest first by (change_time, seq), keyset-paged. change_time is set by the sequencer with the seq, under
 * its lock, so the two orders agree; ordering by time lets a `time` filter be an index range. An admin lists anyone's changes or everyone's (no user_id); a user its
 * own (the proto's ADMIN_OR_SELF on user_id, enforced by the auth interceptor, and checked again here).
 * Rows are kept for AUDIT_RETENTION; a row's resume token is the one WatchUsers gave for it, which expires
 * with CHANGE_LOG_RETENTION (the watch's horizon), not with the row.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import type pg from "pg";
import {
  type ListUserChangesRequest,
  type ListUserChangesResponse,
  type UserChange,
  UserChangeSchema,
  WatchEventType,
} from "../../../gen/user/v1/user_service_pb.js";
import { ACTOR_COLUMNS, type ActorRow, actorOfRow } from "../../changes/change-feed.ts";
import { type ChangeType, sequenceChanges, type UserSnapshot } from "../../changes/change-log.ts";
import { kCaller } from "../../rpc/context.ts";
import { ServiceError } from "../../rpc/errors.ts";
import { eventIdOf, toProtoActor } from "../actor.message.ts";
import { toSql } from "../list/index.ts";
import { toProtoUser } from "../user.message.ts";
import { changedFields, userFromSnapshot } from "../user.snapshot.ts";
import { encodeResumeToken } from "../watch/resume-token.ts";
import { type HistoryFilter, historyFilterSql, parseHistoryFilter } from "./history-filter.ts";
import type { HistoryCursor, HistoryPageTokens } from "./history-page-token.ts";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;
/** At most this many changes numbered by a first page (the feed's poll numbers the rest of a backlog). */
const SEQUENCE_BATCH = 10_000;

type Row = ActorRow & {
  id: string;
  seq: string;
  type: ChangeType;
  change_time: Date;
  snapshot: UserSnapshot;
  previous: UserSnapshot | null;
  changed_fields: string[] | null;
  /** change_time to the microsecond, for the cursor. */
  position: string;
};

const eventTypes = {
  created: WatchEventType.CREATED,
  updated: WatchEventType.UPDATED,
  deleted: WatchEventType.DELETED,
  undeleted: WatchEventType.UNDELETED,
} as const;

/** One page of history: up to `size + 1` rows after `after`, newest first. */
async function readPage(
  pool: pg.Pool,
  q: { userId: string; filter: HistoryFilter | null; after: HistoryCursor | null; size: number },
): Promise<Row[]> {
  const { sql, params } = toSql(
    (p) => `select id, seq, type, change_time, snapshot, previous, changed_fields, ${ACTOR_COLUMNS},
        to_char(change_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as position
      from user_changes
      where seq is not null
        and ${q.userId ? `user_id = ${p.add(q.userId)}::uuid` : "true"}
        and ${q.after ? `(change_time, seq) < (${p.add(q.after.time)}::timestamptz, ${p.add(q.after.seq)}::bigint)` : "true"}
        and ${historyFilterSql(q.filter, p)}
      order by change_time desc, seq desc limit ${p.add(q.size + 1)}`,
  );
  return (await pool.query<Row>(sql, params)).rows;
}

function toChange(r: Row): UserChange {
  return create(UserChangeSchema, {
    eventId: eventIdOf(r.id),
    resumeToken: encodeResumeToken(Number(r.seq)),
    type: eventTypes[r.type],
    changeTime: timestampFromDate(r.change_time),
    actor: toProtoActor(actorOfRow(r)),
    // Rows written before changed fields were stored: computed from the snapshots while `previous` is kept.
    changedFields:
      r.changed_fields ?? (r.type === "created" || r.previous ? changedFields(r.previous, r.snapshot) : []),
    user: toProtoUser(userFromSnapshot(r.snapshot)),
  });
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
      changes: page.map(toChange),
      nextPageToken:
        rows.length > size ? deps.pageTokens.encode(listing, { time: last.position, seq: Number(last.seq) }) : "",
    };
  };
}
