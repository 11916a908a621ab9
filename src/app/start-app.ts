/**
 * Composition root of a running service, in three steps in declaration order: the database (database.ts),
 * the features over it (features.ts), and the served surface (server.ts). `startApp` is what main.ts runs
 * and what tests start on port 0, so tests exercise the very same server.
 */
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import type { Config } from "../config.ts";
import type { Orm } from "../db/orm.ts";
import { createLogger } from "../logger.ts";
import { startHealth } from "../ops/health.ts";
import { createMetrics, pgPoolStats } from "../ops/metrics.ts";
import { startPruner } from "../ops/pruner.ts";
import { startTracing } from "../ops/tracing.ts";
import { openDatabase } from "./database.ts";
import { startFeatures } from "./features.ts";
import { pruneStatements } from "./prune-statements.ts";
import { createReleases } from "./releases.ts";
import { startServer } from "./server.ts";

/** A running service. */
export interface App {
  readonly port: number;
  readonly url: string;
  readonly orm: Orm;
  readonly log: Logger;
  /** Graceful shutdown: stop accepting, let calls finish (up to SHUTDOWN_GRACE), close the database. */
  close(): Promise<void>;
}

/** Options that are not configuration: where logs go. */
export interface AppOptions {
  log?: Logger;
}

/** Starts the service. */
export async function startApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const log = opts.log ?? createLogger(config.logLevel);
  const releases = createReleases(log);
  const shutdown = new AbortController();
  let closing: Promise<void> | undefined;
  try {
    const db = await openDatabase(config, log, releases);
    const metrics = createMetrics({
      pools: { orm: pgPoolStats(await db.orm.em.getConnection().getNativeClient()), queries: pgPoolStats(db.pool) },
    });
    const health = await startHealth({
      services: [UserService.typeName, AuthService.typeName, WebhookService.typeName],
      probe: db.answers,
    });
    releases.push("health", () => health.shutdown());
    const prunes = pruneStatements(config);
    const pruned = metrics.registerCounter(
      "pruned_rows_total",
      "Expired rows deleted by the pruner, by table.",
      "table",
      prunes.map((p) => p.table),
    );
    releases.push(
      "pruner",
      startPruner(db.pool, { statements: prunes, everyMs: config.pruneIntervalMs, log, onPruned: pruned }),
    );
    // Only when an OTLP endpoint is configured: otherwise no OpenTelemetry code is even loaded.
    const tracing = config.tracing ? await startTracing(config.tracing, log) : undefined;
    if (tracing) releases.push("tracing", () => tracing.shutdown());

    const validator = createValidator();
    const features = await startFeatures(config, { log, db, metrics, validator, releases });
    const { server, url } = await startServer(config, {
      log,
      db,
      features,
      metrics,
      health,
      tracing,
      validator,
      releases,
      shutdownSignal: shutdown.signal,
      closing: () => closing !== undefined,
    });
    return {
      port: server.port,
      url,
      orm: db.orm,
      log,
      close() {
        closing ??= (async () => {
          // Not serving; no new connections; GOAWAY lets open HTTP/2 sessions finish their calls.
          health.shutdown();
          await server.stopAccepting();
          // Unary calls finish; streams may end by themselves within the grace period...
          const idle = await server.drained(config.shutdownGraceMs);
          if (!idle) {
            // ...and the rest are ended with UNAVAILABLE, given a moment to write their trailers.
            shutdown.abort(new ConnectError("the server is shutting down; retry on another replica", Code.Unavailable));
            await server.drained(500);
          }
          server.destroyConnections();
          // Every call has ended, so every span has: tracing flushes first, the database goes last.
          await releases.releaseAll();
        })();
        return closing;
      },
    };
  } catch (err) {
    await releases.releaseAll();
    throw err;
  }
}
