/**
 * The filter of ListAuthEvents: the event-listing filter (src/users/list/event-filter.ts) over `type`
 * (AUTH_EVENT_TYPE_... names), `time` and `user_id` (`user_id = ""` is an event with no user, a failed login
 * for an unknown email; `user_id != "<uuid>"` includes those).
 */
import { createEventFilter, type EventFilter } from "../users/list/index.ts";
import { AUTH_EVENT_TYPES } from "./auth-event-recorder.ts";

/** A parsed filter; null matches every event. */
export type AuthEventFilter = EventFilter;

const filter = createEventFilter({
  types: Object.fromEntries(AUTH_EVENT_TYPES.map((t) => [`AUTH_EVENT_TYPE_${t}`, t])),
  userField: "user_id",
  typeColumn: "type",
  timeColumn: "time",
  userColumn: "user_id",
});

/** Parses and checks a ListAuthEvents filter, or throws FilterError (INVALID_FILTER). */
export const parseAuthEventFilter = filter.parse;
/** The SQL condition on auth_events for a filter (`true` for none), its values added to `p`. */
export const authEventFilterSql = filter.sql;
