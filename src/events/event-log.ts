/**
 * The outbound events, in one order: every user change (`user_changes`) and every auth event
 * (`auth_events`), numbered by the change log's sequencer from one sequence under one lock
 * (Migration20261207000000, docs/adr/0024-event-delivery.md). Seq order is the order events became visible
 * with a seq, so "every event after seq N" is exact: a reader that has read past N never sees a smaller seq
 * appear later. Webhook delivery and the NATS publisher keep a cursor (a seq) each and read after it.
 *
 * An event as delivered: its stable id (a change's row id in decimal, an auth event's UUIDv7: the two forms
 * cannot collide), its type name on the wire (`user.updated`, `auth.login_failed`), its time, and `data`,
 * the proto JSON of the `user.v1.UserChange` or `auth.v1.AuthEvent` (the items of ListUserChanges and
 * ListAuthEvents).
 */
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import type pg from "pg";
import { AuthEventSchema } from "../../gen/auth/v1/auth_event_pb.js";
import { UserChangeSchema } from "../../gen/user/v1/user_service_pb.js";
import { AUTH_EVENT_COLUMNS, type AuthEventRow, toAuthEvent } from "../auth/auth-event.message.ts";
import { AUTH_EVENT_TYPES, type AuthEventType } from "../auth/auth-event-recorder.ts";
import type { ChangeType } from "../changes/change-log.ts";
import { toUserChange, USER_CHANGE_COLUMNS, type UserChangeRow } from "../users/history/user-change.message.ts";

/** One outbound event. */
export interface OutboundEvent {
  /** Its position in the one order of events. */
  seq: number;
  /** Stable and unique: the `webhook-id` header and the `Nats-Msg-Id`. */
  id: string;
  /** The type name on the wire, e.g. `user.updated`, `auth.login_failed`. */
  type: string;
  /** When it happened: the change's commit order time, the auth event's record time. */
  time: Date;
  /** The proto JSON of the UserChange or AuthEvent. */
  data: JsonObject;
}

const CHANGE_TYPES: readonly ChangeType[] = ["created", "updated", "deleted", "undeleted"];

/** The wire name of a change type. */
export const userEventType = (t: ChangeType) => `user.${t}`;
/** The wire name of an auth event type (`LOGIN_FAILED` → `auth.login_failed`). */
export const authEventType = (t: AuthEventType) => `auth.${t.toLowerCase()}`;

/** Every event type name, user types first. */
export const EVENT_TYPES: readonly string[] = [
  ...CHANGE_TYPES.map(userEventType),
  ...AUTH_EVENT_TYPES.map(authEventType),
];

/** True for a known event type name. */
export function isEventType(name: string): boolean {
  return EVENT_TYPES.includes(name);
}

const JSON_OPTS = { useProtoFieldName: false } as const;

/** What a reader asks for: the events after `after`, at most `limit`, of these types only (all when absent). */
export interface EventQuery {
  after: number;
  limit: number;
  /** Wire names; absent or empty means every type. */
  types?: readonly string[];
}

/** A page of events, and how far the log was read. */
export interface EventPage {
  events: OutboundEvent[];
  /**
   * Every event up to this seq has been read (those of other types skipped): a reader's cursor may move here
   * even when `events` is empty, so it never scans the same events of other types again.
   */
  readTo: number;
}

/**
 * The events after `q.after` in seq order. The newest seq is read first, in the same snapshot-free way
 * the feed reads (visibility order): every event up to it is visible already, so when fewer than
 * `limit` events match, the reader has seen everything through it.
 */
export async function readEvents(db: pg.Pool | pg.ClientBase, q: EventQuery): Promise<EventPage> {
  const wanted = q.types && q.types.length > 0 ? new Set(q.types) : undefined;
  const changeTypes = CHANGE_TYPES.filter((t) => !wanted || wanted.has(userEventType(t)));
  const authTypes = AUTH_EVENT_TYPES.filter((t) => !wanted || wanted.has(authEventType(t)));
  const end = await newestSeq(db);
  if (end <= q.after) return { events: [], readTo: q.after };
  const [changes, auths] = await Promise.all([
    changeTypes.length === 0
      ? []
      : db
          .query<UserChangeRow>({
            name: "outbound-user-changes",
            text: `select ${USER_CHANGE_COLUMNS} from user_changes
              where seq > $1 and seq <= $2 and type = any($3::text[]) order by seq limit $4`,
            values: [q.after, end, changeTypes, q.limit],
          })
          .then((r) => r.rows),
    authTypes.length === 0
      ? []
      : db
          .query<AuthEventRow & { seq: string }>({
            name: "outbound-auth-events",
            text: `select ${AUTH_EVENT_COLUMNS}, seq from auth_events
              where seq > $1 and seq <= $2 and type = any($3::text[]) order by seq limit $4`,
            values: [q.after, end, authTypes, q.limit],
          })
          .then((r) => r.rows),
  ]);
  const events: OutboundEvent[] = [
    ...changes.map((r) => ({
      seq: Number(r.seq),
      id: r.id,
      type: userEventType(r.type),
      time: r.change_time,
      data: toJson(UserChangeSchema, toUserChange(r), JSON_OPTS) as JsonObject,
    })),
    ...auths.map((r) => ({
      seq: Number(r.seq),
      id: r.id,
      type: authEventType(r.type),
      time: r.time,
      data: toJson(AuthEventSchema, toAuthEvent(r), JSON_OPTS) as JsonObject,
    })),
  ].sort((a, b) => a.seq - b.seq);
  if (events.length < q.limit) return { events, readTo: end };
  const page = events.slice(0, q.limit);
  return { events: page, readTo: page[page.length - 1].seq };
}

/** The newest seq given to any event (0 when none). */
export async function newestSeq(db: pg.Pool | pg.ClientBase): Promise<number> {
  const { rows } = await db.query<{ seq: string | null }>({
    name: "outbound-newest-seq",
    text: `select greatest((select max(seq) from user_changes), (select max(seq) from auth_events)) as seq`,
  });
  return Number(rows[0]?.seq ?? 0);
}

/** The time of the event at `seq` (null when there is none, e.g. pruned): delivery lag is measured with it. */
export async function eventTime(db: pg.Pool | pg.ClientBase, seq: number): Promise<Date | null> {
  const { rows } = await db.query<{ time: Date }>({
    name: "outbound-event-time",
    text: `select change_time as time from user_changes where seq = $1
      union all select time from auth_events where seq = $1 limit 1`,
    values: [seq],
  });
  return rows[0]?.time ?? null;
}
