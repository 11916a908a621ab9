/**
 * Webhook delivery and events.v1.WebhookService (docs/adr/0024-event-delivery.md, docs/webhooks.md): the
 * dispatcher started on every replica (one replica at a time per endpoint, by lease), woken by the
 * sequencer's NOTIFY, with its metrics; stopped on shutdown before the pools close.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Gauge } from "prom-client";
import type { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import type { ChangeFeed } from "../changes/change-feed.ts";
import type { Config } from "../config.ts";
import { createDispatcher } from "../events/webhooks/dispatcher.ts";
import { deliveryLags } from "../events/webhooks/lag.ts";
import { createSecretBox } from "../events/webhooks/secret-box.ts";
import { FAILURE_REASONS } from "../events/webhooks/sender.ts";
import { createWebhookRepository } from "../events/webhooks/webhook.repository.ts";
import { createDeliveryPageTokens, createWebhookService } from "../events/webhooks/webhook.service.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Database } from "./database.ts";
import type { Releases } from "./releases.ts";

/** Starts delivering (on every replica; one at a time per endpoint) and returns the service. */
export function startWebhooks(
  config: Config,
  deps: {
    log: Logger;
    db: Database;
    metrics: Metrics;
    releases: Releases;
    feed: ChangeFeed;
    derivedKey: (purpose: string) => string;
  },
): Partial<ServiceImpl<typeof WebhookService>> {
  const { metrics } = deps;
  const pool = deps.db.pool;
  const secrets = createSecretBox(deps.derivedKey("webhook-secrets"));
  const attempts = metrics.registerCounter(
    "webhook_delivery_attempts_total",
    "Webhook delivery attempts, by result.",
    "result",
    ["success", "failure"],
  );
  const failures = metrics.registerCounter(
    "webhook_delivery_failures_total",
    "Failed webhook delivery attempts, by reason: status (not 2xx), timeout, network, blocked (SSRF guard).",
    "reason",
    FAILURE_REASONS,
  );
  new Gauge({
    name: "webhook_delivery_lag_seconds",
    help: "Per active webhook: the newest event's time minus the last delivered event's time (0 when caught up).",
    labelNames: ["webhook_id"],
    registers: [metrics.registry],
    async collect() {
      // While the database is away the scrape still answers, with the last values read.
      const lags = await deliveryLags(pool).catch(() => undefined);
      if (!lags) return;
      // Deleted and disabled endpoints leave the exposition.
      this.reset();
      for (const l of lags) this.set({ webhook_id: l.webhookId }, l.seconds);
    },
  });
  const dispatcher = createDispatcher({
    pool,
    log: deps.log,
    secrets,
    allowPrivate: config.webhookAllowPrivate,
    concurrency: config.webhookConcurrency,
    retryBaseMs: config.webhookRetryBaseMs,
    onAttempt(result) {
      attempts(result.ok ? "success" : "failure", 1);
      if (!result.ok) failures(result.reason, 1);
    },
  });
  const unsubscribe = deps.feed.onNumbered(dispatcher.wake);
  dispatcher.start();
  deps.releases.push("webhook delivery", async () => {
    unsubscribe();
    await dispatcher.stop();
  });
  return createWebhookService({
    webhooks: createWebhookRepository(pool),
    secrets,
    pageTokens: createDeliveryPageTokens(deps.derivedKey("webhook-delivery-page-tokens")),
    allowPrivate: config.webhookAllowPrivate,
  });
}
