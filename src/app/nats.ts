/**
 * Publishing every event to NATS JetStream when NATS_URL is set (docs/nats.md, docs/adr/0024-event-delivery.md),
 * with its metrics.
 */
import type { Logger } from "pino";
import type { ChangeFeed } from "../changes/change-feed.ts";
import type { Config } from "../config.ts";
import { EVENT_TYPES } from "../events/event-log.ts";
import { createNatsPublisher, NATS_PUBLISHER } from "../events/nats/publisher.ts";
import { publishLagSeconds } from "../events/nats/publisher-lease.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Database } from "./database.ts";
import type { Releases } from "./releases.ts";

/** Starts the publisher when NATS_URL is set (every replica runs one; one at a time publishes). */
export async function startNatsPublisher(
  config: Config,
  deps: { log: Logger; db: Database; metrics: Metrics; releases: Releases; feed: ChangeFeed },
): Promise<void> {
  if (!config.natsUrl) return;
  const { metrics, db } = deps;
  const published = metrics.registerCounter(
    "nats_published_total",
    "Events stored in the JetStream stream USER_EVENTS by this replica, by type.",
    "type",
    EVENT_TYPES,
  );
  const failures = metrics.registerCounter(
    "nats_publish_failures_total",
    "Publishes to JetStream that failed, by reason: unavailable (no ack in time, NATS away) or refused.",
    "reason",
    ["unavailable", "refused"],
  );
  let connected = 0;
  metrics.registerGauge("nats_connected", "1 while this replica is connected to NATS.", () => connected);
  // Read from the database at each scrape (the same on every replica); the last value while it is away.
  let lag = 0;
  metrics.registerGauge(
    "nats_publish_lag_seconds",
    "The newest event's time minus that of the last event confirmed in the stream; 0 when caught up.",
    async () => (lag = await publishLagSeconds(db.pool, NATS_PUBLISHER).catch(() => lag)),
  );
  const publisher = createNatsPublisher({
    url: config.natsUrl,
    pool: db.pool,
    log: deps.log,
    observer: {
      published: (type) => published(type, 1),
      failed: (reason) => failures(reason, 1),
      connected: (up) => {
        connected = up ? 1 : 0;
      },
    },
  });
  const unsubscribe = deps.feed.onNumbered(publisher.wake);
  publisher.start();
  deps.releases.push("NATS publisher", async () => {
    unsubscribe();
    await publisher.close();
  });
}
