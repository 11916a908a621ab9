/**
 * Entry point: environment (and `.env`) → config → app; SIGTERM/SIGINT → graceful shutdown, exit 0. A bad
 * configuration value stops start-up with one line naming the variable.
 */
import { existsSync } from "node:fs";
import { startApp } from "./app/start-app.ts";
import { ConfigError, loadConfig } from "./config.ts";

if (existsSync(".env")) process.loadEnvFile(".env");

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`configuration error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

try {
  const app = await startApp(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, "shutting down");
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ errorName: err instanceof Error ? err.name : typeof err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
} catch (err) {
  process.stderr.write(`start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
