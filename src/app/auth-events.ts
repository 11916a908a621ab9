/**
 * Starting the auth event recorder with its metrics (src/auth/auth-event-recorder.ts).
 */

import type { Logger } from "pino";
import {
  AUTH_EVENT_TYPES,
  type AuthEventRecorder,
  createAuthEventRecorder,
  DROP_REASONS,
  noAuthEvents,
} from "../auth/auth-event-recorder.ts";
import type { ChangeFeed } from "../changes/change-feed.ts";
import type { Config } from "../config.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Database } from "./database.ts";
import type { Releases } from "./releases.ts";

/**
 * The auth event recorder (docs/adr/0023-auth-events.md): buffered, written in batches, written out on
 * shutdown before the pool closes (its release step runs before the database's).
 */
export function startAuthEvents(
  config: Config,
  deps: { log: Logger; db: Database; metrics: Metrics; releases: Releases; feed: Pick<ChangeFeed, "poke"> },
): AuthEventRecorder {
  if (!config.authEvents) return noAuthEvents;
  const { metrics } = deps;
  const recorded = metrics.registerCounter(
    "auth_events_recorded_total",
    "Auth events written to the database, by type.",
    "type",
    AUTH_EVENT_TYPES.map((t) => t.toLowerCase()),
  );
  const dropped = metrics.registerCounter(
    "auth_events_dropped_total",
    "Auth events lost, by why: full (the buffer overflowed while the database was away), refused, closed.",
    "why",
    DROP_REASONS,
  );
  const events = createAuthEventRecorder({
    pool: deps.db.pool,
    log: deps.log,
    everyMs: config.authEventsFlushMs,
    onRecorded: (type, n) => recorded(type.toLowerCase(), n),
    // Numbered right away (one order with the user changes), so outbound delivery sees them at once.
    onWritten: () => void deps.feed.poke(),
    onDropped: dropped,
  });
  metrics.registerGauge("auth_events_buffered", "Auth events waiting to be written.", events.buffered);
  deps.releases.push("auth events", () => events.close());
  return events;
}
