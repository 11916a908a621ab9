/**
 * The live API keys, held in memory and polled (docs/adr/0019-api-keys.md): the rows' repository and the
 * registry the caller verifier reads, with their metrics and their release at shutdown.
 */
import type pg from "pg";
import type { Logger } from "pino";
import { createApiKeyRepository } from "../auth/api-key.repository.ts";
import { createApiKeyRegistry } from "../auth/api-key-registry.ts";
import type { Config } from "../config.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Releases } from "./releases.ts";

/** Loads the live keys and starts polling for changes. */
export async function startApiKeys(
  config: Config,
  deps: { log: Logger; pool: pg.Pool; metrics: Metrics; releases: Releases },
) {
  const apiKeyRows = createApiKeyRepository(deps.pool);
  const apiKeyPolls = deps.metrics.registerCounter(
    "api_key_polls_total",
    "Reads of changed API keys, by why: load (start, or after an outage), interval, or miss (an unknown secret).",
    "why",
    ["load", "interval", "miss"],
  );
  const apiKeys = createApiKeyRegistry({
    keys: apiKeyRows,
    log: deps.log,
    lastUsedEveryMs: config.apiKeyLastUsedIntervalMs,
    onPoll: (why) => apiKeyPolls(why, 1),
  });
  await apiKeys.start();
  deps.metrics.registerGauge("api_keys_live", "API keys held in memory (not deleted).", apiKeys.size);
  deps.releases.push("api keys", () => apiKeys.close());
  return { rows: apiKeyRows, registry: apiKeys };
}
