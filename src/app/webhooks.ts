/**
 * Webhook delivery and events.v1.WebhookService (docs/adr/0024-event-delivery.md, docs/webhooks.md).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import type { ChangeFeed } from "../changes/change-feed.ts";
import type { Config } from "../config.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Database } from "./database.ts";
import type { Releases } from "./releases.ts";

/** Starts delivering (on every replica; one at a time per endpoint) and returns the service. */
export function startWebhooks(
  _config: Config,
  _deps: {
    log: Logger;
    db: Database;
    metrics: Metrics;
    releases: Releases;
    feed: ChangeFeed;
    derivedKey: (purpose: string) => string;
  },
): Partial<ServiceImpl<typeof WebhookService>> {
  return {};
}
