/**
 * ListUserChanges' filter: the event-listing filter (../list/event-filter.ts) over `type` (WatchEventType
 * names), `time` (the change's commit-order time) and `actor.user_id` (`""`: a change with no user as its
 * actor, the service's own).
 */
import { createEventFilter, type EventFilter } from "../list/index.ts";

/** A parsed filter; null matches every change. */
export type HistoryFilter = EventFilter;

const filter = createEventFilter({
  types: {
    WATCH_EVENT_TYPE_CREATED: "created",
    WATCH_EVENT_TYPE_UPDATED: "updated",
    WATCH_EVENT_TYPE_DELETED: "deleted",
    WATCH_EVENT_TYPE_UNDELETED: "undeleted",
  },
  userField: "actor.user_id",
  typeColumn: "type",
  timeColumn: "change_time",
  userColumn: "actor_user_id",
});

/** The checked filter (null: every change), or FilterError (INVALID_FILTER). */
export const parseHistoryFilter = filter.parse;
/** The SQL condition on user_changes for a filter (`true` for none). Always parenthesized. */
export const historyFilterSql = filter.sql;
