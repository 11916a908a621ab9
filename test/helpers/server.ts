/**
 * Starts the real service (src/app/start-app.ts) on port 0 against a fresh database, with its log lines captured so
 * tests can assert on them, and logs in the bootstrap admin.
 */
import { Writable } from "node:stream";
import { type App, startApp } from "../../src/app/start-app.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { createTestDatabase } from "./database.ts";

/** Credentials of the bootstrap admin of every test server. */
export const ADMIN = { email: "admin@example.com", password: "admin-password-123" };
/** The JWT secret of every test server (tests forge tokens with it). */
export const JWT_SECRET = "test-secret-test-secret-test-secret-0123456789";

/** A running test server. */
export interface TestServer {
  app: App;
  url: string;
  port: number;
  databaseUrl: string;
  /** Every log line written so far, parsed. */
  logs: Record<string, unknown>[];
  /** Raw log text. */
  logText(): string;
  close(): Promise<void>;
}

/** Starts a server; `env` overrides configuration variables. */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const databaseUrl = env.DATABASE_URL ?? (await createTestDatabase());
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: databaseUrl,
    JWT_SECRET,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: "info",
    SHUTDOWN_GRACE: "2s",
    DB_POOL_MAX: "10",
    // Suites log in many times from one address; the rate-limit tests set their own values.
    RATE_LIMIT_PER_SECOND: "100000",
    RATE_LIMIT_BURST: "100000",
    RATE_LIMIT_LOGIN_PER_MINUTE: "100000",
    RATE_LIMIT_CHANGE_PASSWORD_PER_MINUTE: "100000",
    ...env,
  });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(
        ...String(chunk)
          .split("\n")
          .filter((l) => l !== ""),
      );
      done();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const app = await startApp(config, { log });
  return {
    app,
    url: app.url,
    port: app.port,
    databaseUrl,
    get logs() {
      return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    logText: () => lines.join("\n"),
    close: () => app.close(),
  };
}
