/**
 * The only reader of the environment. `loadConfig` turns an env map into a typed, frozen Config, or throws a
 * ConfigError naming the variable, so start-up can stop with one clear line instead of a stack trace.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";

/** A configuration value that cannot be used; `variable` names the environment variable at fault. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/** Everything the service reads from its environment, validated. Durations are in milliseconds. */
export interface Config {
  readonly nodeEnv: string;
  readonly host: string;
  readonly port: number;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly jwtSecret: string | undefined;
  /** JWT_PRIVATE_KEY_FILE: RSA (RS256) or EC P-256 (ES256) signing key; undefined means HS256 with the secret. */
  readonly jwtPrivateKey: KeyObject | undefined;
  /** JWT_PREVIOUS_PUBLIC_KEY_FILE: keys of earlier signing keys, whose tokens verify until they expire. */
  readonly jwtPreviousPublicKeys: readonly KeyObject[];
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
  readonly accessTokenTtlMs: number;
  readonly refreshTokenTtlMs: number;
  /** SESSION_MAX_AGE: a session ends this long after its login, however often its refresh token is used. */
  readonly sessionMaxAgeMs: number;
  /** RESET_CODE_TTL: how long a password reset or email verification code works after it is made. */
  readonly resetCodeTtlMs: number;
  readonly allowSignup: boolean;
  readonly adminEmail: string;
  readonly adminPassword: string | undefined;
  readonly corsAllowedOrigins: readonly string[];
  readonly maxMessageBytes: number;
  readonly shutdownGraceMs: number;
  readonly changeLogRetentionMs: number;
  /** AUDIT_RETENTION: how long the change history and the auth events are kept. */
  readonly auditRetentionMs: number;
  /** AUTH_EVENTS: record auth events (ListAuthEvents); false only to measure what recording costs. */
  readonly authEvents: boolean;
  /** AUTH_EVENTS_FLUSH_INTERVAL: how often buffered auth events are written (and at 500 waiting). */
  readonly authEventsFlushMs: number;
  /** WEBHOOK_RETRY_BASE: the first retry of a failed webhook delivery; later ones double, at most 1 h apart. */
  readonly webhookRetryBaseMs: number;
  /** WEBHOOK_ALLOW_PRIVATE: allow webhook URLs on loopback, private and link-local addresses. */
  readonly webhookAllowPrivate: boolean;
  /** WEBHOOK_CONCURRENCY: endpoints delivered to at once by one replica (each one event at a time). */
  readonly webhookConcurrency: number;
  /** NATS_URL: publish every event to JetStream (stream USER_EVENTS); undefined to not. */
  readonly natsUrl: string | undefined;
  readonly watchHeartbeatMs: number;
  /** WATCH_MAX_BACKLOG: changes buffered for one watcher that is not reading before it is ended (UNAVAILABLE). */
  readonly watchMaxBacklog: number;
  /** OTLP trace export; undefined (and OpenTelemetry never loaded) unless an OTLP endpoint is set. */
  readonly tracing: TracingConfig | undefined;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly logLevel: "debug" | "info" | "warn" | "error" | "silent";
  readonly dbPoolMax: number;
  readonly rateLimitPerSecond: number;
  readonly rateLimitBurst: number;
  /** TRUST_PROXY: the proxies whose X-Forwarded-For is believed (empty: none; the peer is the client). */
  readonly trustedProxies: readonly TrustedProxy[];
  /** RATE_LIMIT_REDIS_URL: Redis/Valkey shared by every replica for the rate limits; undefined: per process. */
  readonly rateLimitRedisUrl: string | undefined;
  /** RATE_LIMIT_LOGIN_PER_MINUTE: Login calls per email per minute. */
  readonly rateLimitLoginPerMinute: number;
  /** RATE_LIMIT_CHANGE_PASSWORD_PER_MINUTE: ChangePassword calls per user per minute. */
  readonly rateLimitChangePasswordPerMinute: number;
  readonly unaryFastPath: boolean;
  /** USER_CACHE_SIZE: users kept in memory for reads and auth checks (0: none). */
  readonly userCacheSize: number;
  /** HASH_QUEUE_MAX: password hashes waiting for a thread before more are refused; undefined: 32 per thread. */
  readonly hashQueueMax: number | undefined;
  /** PRUNE_INTERVAL: how often expired rows (change log, refresh tokens, idempotency keys, login failures) are deleted. */
  readonly pruneIntervalMs: number;
  /** H2_MAX_CONCURRENT_STREAMS: advertised in HTTP/2 SETTINGS; streams beyond it are refused. */
  readonly h2MaxConcurrentStreams: number;
  /** HEADERS_TIMEOUT: a connection without a complete request head (HTTP/2: preface and SETTINGS) by then is closed. */
  readonly headersTimeoutMs: number;
  /** IDLE_TIMEOUT: a connection with no request or stream in progress for this long is closed. */
  readonly idleTimeoutMs: number;
  /** MAX_CONNECTIONS: connections beyond it are closed at once. */
  readonly maxConnections: number;
  /** API_KEY_LAST_USED_INTERVAL: how often the last use of API keys is written (at most once per key). */
  readonly apiKeyLastUsedIntervalMs: number;
}

const samplers = [
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
  "always_on",
  "always_off",
  "traceidratio",
] as const;

/** Where and how spans are exported, from the standard OpenTelemetry variables (OTLP over HTTP, protobuf). */
export interface TracingConfig {
  /** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, or OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces". */
  readonly tracesUrl: string;
  /** OTEL_EXPORTER_OTLP_HEADERS ("key=value,..."), e.g. a vendor's API key. */
  readonly headers: Readonly<Record<string, string>>;
  /** OTEL_SERVICE_NAME; default "user-service". */
  readonly serviceName: string;
  /** OTEL_TRACES_SAMPLER; default parentbased_always_on, so a caller's sampling decision is kept. */
  readonly sampler: (typeof samplers)[number];
  /** OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers, 0..1; default 1. */
  readonly samplerRatio: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "10s", "15m", "2h", "30d" (or a bare number of seconds) into milliseconds. */
export function parseDuration(variable: string, raw: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!match) {
    throw new ConfigError(variable, `"${raw}" is not a duration (use e.g. 500ms, 10s, 15m, 2h, 30d)`);
  }
  const ms = Number(match[1]) * durationUnits[match[2] ?? "s"];
  if (!Number.isFinite(ms) || ms <= 0) throw new ConfigError(variable, "must be greater than zero");
  return Math.round(ms);
}

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
}

function optional(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `"${raw}" is not a whole number`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`);
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (["true", "1", "yes", "on"].includes(raw)) return true;
  if (["false", "0", "no", "off"].includes(raw)) return false;
  throw new ConfigError(name, `"${raw}" is not a boolean (use true or false)`);
}

/** A trusted proxy network, in the form node:net's `BlockList.addSubnet` takes. */
export interface TrustedProxy {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/** TRUST_PROXY: false (none), true (loopback, kept for compatibility), or a comma list of CIDRs or addresses. */
function trustedProxies(env: Env, name: string): readonly TrustedProxy[] {
  const raw = optional(env, name)?.trim() ?? "false";
  if (["false", "0", "no", "off"].includes(raw.toLowerCase())) return Object.freeze([]);
  const list = ["true", "1", "yes", "on"].includes(raw.toLowerCase()) ? "127.0.0.1/32,::1/128" : raw;
  return Object.freeze(
    list.split(",").map((entry) => {
      const [address, bits, extra] = entry.trim().split("/");
      const family = address.includes("%") ? 0 : isIP(address);
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
      if (family === 0 || extra !== undefined || prefix < 0 || prefix > max) {
        throw new ConfigError(
          name,
          `"${entry.trim()}" is not an IP address or CIDR (use false, true, or a comma list such as 10.0.0.0/8,fd00::/8)`,
        );
      }
      return Object.freeze({ address, prefix, family: family === 4 ? ("ipv4" as const) : ("ipv6" as const) });
    }),
  );
}

/** A redis:// or rediss:// URL. Errors never quote it: it may hold a password. */
function redisUrl(env: Env, name: string): string | undefined {
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {}
  if (url?.protocol !== "redis:" && url?.protocol !== "rediss:") {
    throw new ConfigError(name, "is not a redis:// or rediss:// URL");
  }
  return raw;
}

/** One or more nats:// (or tls://) server URLs, comma-separated, as the NATS client takes them. */
function natsUrl(env: Env, name: string): string | undefined {
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  for (const part of raw.split(",")) {
    let url: URL | undefined;
    try {
      url = new URL(part.trim());
    } catch {}
    if (url?.protocol !== "nats:" && url?.protocol !== "tls:") {
      throw new ConfigError(name, "is not a nats:// or tls:// URL (several may be given, comma-separated)");
    }
  }
  return raw;
}

function duration(env: Env, name: string, fallback: string): number {
  return parseDuration(name, str(env, name, fallback));
}

function readKeyFile(name: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(name, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "unreadable"})`);
  }
}

/** Why a key cannot sign this service's JWTs, or undefined when it can (RSA of 2048+ bits, EC P-256). */
function unusableKey(key: KeyObject): string | undefined {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "rsa") {
    return (d?.modulusLength ?? 0) < 2048
      ? `is a ${d?.modulusLength}-bit RSA key; RS256 needs at least 2048 bits`
      : undefined;
  }
  if (key.asymmetricKeyType === "ec")
    return d?.namedCurve === "prime256v1" ? undefined : `is an EC key on ${d?.namedCurve}; ES256 needs P-256`;
  return `is a ${key.asymmetricKeyType} key; use an RSA (RS256) or EC P-256 (ES256) key`;
}

/**
 * The keys in PEM files, parsed and checked here so a bad file stops start-up with the variable's name. A
 * private key is one file holding one key; public keys may be a comma list of files, each holding one or
 * more keys (every key still in rotation).
 */
function keyFiles(env: Env, name: string, kind: "private" | "public"): KeyObject[] {
  const raw = optional(env, name);
  if (raw === undefined) return [];
  const files =
    kind === "private"
      ? [raw]
      : raw
          .split(",")
          .map((f) => f.trim())
          .filter((f) => f !== "");
  return files.flatMap((file) => {
    const text = readKeyFile(name, file);
    const blocks =
      kind === "private" ? [text] : (text.match(/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----/g) ?? []);
    if (blocks.length === 0) throw new ConfigError(name, `${file} holds no PEM key`);
    return blocks.map((pem) => {
      let key: KeyObject;
      try {
        key = kind === "private" ? createPrivateKey(pem) : createPublicKey(pem);
      } catch {
        throw new ConfigError(name, `${file} is not an unencrypted PEM ${kind} key`);
      }
      const why = unusableKey(key);
      if (why) throw new ConfigError(name, `${file} ${why}`);
      return key;
    });
  });
}

function httpUrl(name: string, raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {}
  if (url?.protocol !== "http:" && url?.protocol !== "https:") {
    throw new ConfigError(name, `"${raw}" is not an http(s) URL`);
  }
  return raw;
}

/** "k1=v1,k2=v2" with percent-encoded values. Errors never quote a value: these carry API keys. */
function otlpHeaders(env: Env, name: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [i, entry] of (optional(env, name) ?? "").split(",").entries()) {
    if (entry.trim() === "") continue;
    const at = entry.indexOf("=");
    const key = entry.slice(0, at).trim();
    let value: string | undefined;
    try {
      value = decodeURIComponent(entry.slice(at + 1).trim());
    } catch {}
    if (at < 1 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key) || value === undefined) {
      throw new ConfigError(name, `entry ${i + 1} is not key=value (a header name and a percent-encoded value)`);
    }
    headers[key.toLowerCase()] = value;
  }
  return headers;
}

/**
 * Tracing, on when an OTLP endpoint is set (and OTEL_SDK_DISABLED is not). Every variable is read and
 * checked even when tracing is off, so a typo fails at start-up rather than on the day it is switched on.
 */
function tracingConfig(env: Env): TracingConfig | undefined {
  const base = optional(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  const traces = optional(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const disabled = bool(env, "OTEL_SDK_DISABLED", false);
  for (const name of ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]) {
    const protocol = str(env, name, "http/protobuf");
    if (protocol !== "http/protobuf") throw new ConfigError(name, `"${protocol}" is not supported; use http/protobuf`);
  }
  const headers = otlpHeaders(env, "OTEL_EXPORTER_OTLP_HEADERS");
  const serviceName = str(env, "OTEL_SERVICE_NAME", "user-service");
  const sampler = str(env, "OTEL_TRACES_SAMPLER", "parentbased_always_on") as TracingConfig["sampler"];
  if (!samplers.includes(sampler)) {
    throw new ConfigError("OTEL_TRACES_SAMPLER", `must be one of ${samplers.join(", ")}`);
  }
  const ratioRaw = str(env, "OTEL_TRACES_SAMPLER_ARG", "1");
  const samplerRatio = Number(ratioRaw);
  if (ratioRaw.trim() === "" || !(samplerRatio >= 0 && samplerRatio <= 1)) {
    throw new ConfigError("OTEL_TRACES_SAMPLER_ARG", `"${ratioRaw}" is not a ratio between 0 and 1`);
  }
  const baseTracesUrl = base && `${httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", base).replace(/\/+$/, "")}/v1/traces`;
  const tracesUrl = traces ? httpUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces) : baseTracesUrl;
  if (!tracesUrl || disabled) return undefined;
  return Object.freeze({ tracesUrl, headers: Object.freeze(headers), serviceName, sampler, samplerRatio });
}

const logLevels = ["debug", "info", "warn", "error", "silent"] as const;

/** Validates the environment; throws ConfigError on the first bad value. */
export function loadConfig(env: Env): Config {
  const nodeEnv = str(env, "NODE_ENV", "development");
  const jwtSecret = optional(env, "JWT_SECRET");
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < 32) {
    throw new ConfigError("JWT_SECRET", "must be at least 32 bytes");
  }
  const [jwtPrivateKey] = keyFiles(env, "JWT_PRIVATE_KEY_FILE", "private");
  const jwtPreviousPublicKeys = keyFiles(env, "JWT_PREVIOUS_PUBLIC_KEY_FILE", "public");
  if (jwtPreviousPublicKeys.length > 0 && jwtPrivateKey === undefined) {
    throw new ConfigError(
      "JWT_PREVIOUS_PUBLIC_KEY_FILE",
      "is only used with JWT_PRIVATE_KEY_FILE (the keys of a rotation)",
    );
  }
  if (jwtSecret === undefined && jwtPrivateKey === undefined && nodeEnv === "production") {
    throw new ConfigError("JWT_SECRET", "is required when NODE_ENV=production (or set JWT_PRIVATE_KEY_FILE)");
  }
  const databaseUrl = optional(env, "DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL", "must be a postgres:// or postgresql:// URL");
  }
  const tlsCertFile = optional(env, "TLS_CERT_FILE");
  const tlsKeyFile = optional(env, "TLS_KEY_FILE");
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new ConfigError(tlsCertFile ? "TLS_KEY_FILE" : "TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE go together");
  }
  const adminPassword = optional(env, "ADMIN_PASSWORD");
  if (adminPassword !== undefined && (adminPassword.length < 8 || adminPassword.length > 128)) {
    throw new ConfigError("ADMIN_PASSWORD", "must be 8 to 128 characters");
  }
  const logLevel = str(env, "LOG_LEVEL", "info") as Config["logLevel"];
  if (!logLevels.includes(logLevel)) {
    throw new ConfigError("LOG_LEVEL", `must be one of ${logLevels.join(", ")}`);
  }
  const adminEmail = str(env, "ADMIN_EMAIL", "admin@example.com");
  if (!/^[^\s@]+@[^\s@]+$/.test(adminEmail)) throw new ConfigError("ADMIN_EMAIL", "is not an email address");
  return Object.freeze({
    nodeEnv,
    host: str(env, "HOST", "127.0.0.1"),
    port: int(env, "PORT", 8080, 0, 65535),
    databaseUrl,
    dataDir: str(env, "DATA_DIR", ".data"),
    jwtSecret,
    jwtPrivateKey,
    jwtPreviousPublicKeys: Object.freeze(jwtPreviousPublicKeys),
    jwtIssuer: str(env, "JWT_ISSUER", "user-service"),
    jwtAudience: str(env, "JWT_AUDIENCE", "user-service"),
    accessTokenTtlMs: duration(env, "ACCESS_TOKEN_TTL", "15m"),
    refreshTokenTtlMs: duration(env, "REFRESH_TOKEN_TTL", "30d"),
    sessionMaxAgeMs: duration(env, "SESSION_MAX_AGE", "90d"),
    resetCodeTtlMs: duration(env, "RESET_CODE_TTL", "1h"),
    allowSignup: bool(env, "ALLOW_SIGNUP", true),
    adminEmail,
    adminPassword,
    corsAllowedOrigins: Object.freeze(
      str(env, "CORS_ALLOWED_ORIGINS", "")
        .split(",")
        .map((o) => o.trim())
        .filter((o) => o !== ""),
    ),
    maxMessageBytes: int(env, "MAX_MESSAGE_BYTES", 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    shutdownGraceMs: duration(env, "SHUTDOWN_GRACE", "10s"),
    changeLogRetentionMs: duration(env, "CHANGE_LOG_RETENTION", "7d"),
    auditRetentionMs: duration(env, "AUDIT_RETENTION", "90d"),
    authEvents: bool(env, "AUTH_EVENTS", true),
    authEventsFlushMs: duration(env, "AUTH_EVENTS_FLUSH_INTERVAL", "200ms"),
    webhookRetryBaseMs: duration(env, "WEBHOOK_RETRY_BASE", "5s"),
    webhookAllowPrivate: bool(env, "WEBHOOK_ALLOW_PRIVATE", false),
    webhookConcurrency: int(env, "WEBHOOK_CONCURRENCY", 16, 1, 1000),
    natsUrl: natsUrl(env, "NATS_URL"),
    watchHeartbeatMs: duration(env, "WATCH_HEARTBEAT", "15s"),
    watchMaxBacklog: int(env, "WATCH_MAX_BACKLOG", 10_000, 1, 10_000_000),
    tlsCertFile,
    tlsKeyFile,
    logLevel,
    dbPoolMax: int(env, "DB_POOL_MAX", 10, 1, 1000),
    rateLimitPerSecond: int(env, "RATE_LIMIT_PER_SECOND", 10, 1, 1_000_000),
    rateLimitBurst: int(env, "RATE_LIMIT_BURST", 30, 1, 1_000_000),
    trustedProxies: trustedProxies(env, "TRUST_PROXY"),
    rateLimitRedisUrl: redisUrl(env, "RATE_LIMIT_REDIS_URL"),
    rateLimitLoginPerMinute: int(env, "RATE_LIMIT_LOGIN_PER_MINUTE", 10, 1, 1_000_000),
    rateLimitChangePasswordPerMinute: int(env, "RATE_LIMIT_CHANGE_PASSWORD_PER_MINUTE", 5, 1, 1_000_000),
    tracing: tracingConfig(env),
    unaryFastPath: bool(env, "UNARY_FAST_PATH", true),
    userCacheSize: int(env, "USER_CACHE_SIZE", 1_000_000, 0, 10_000_000),
    hashQueueMax: optional(env, "HASH_QUEUE_MAX") === undefined ? undefined : int(env, "HASH_QUEUE_MAX", 0, 1, 100_000),
    pruneIntervalMs: duration(env, "PRUNE_INTERVAL", "1m"),
    h2MaxConcurrentStreams: int(env, "H2_MAX_CONCURRENT_STREAMS", 100, 1, 1_000_000),
    headersTimeoutMs: duration(env, "HEADERS_TIMEOUT", "10s"),
    idleTimeoutMs: duration(env, "IDLE_TIMEOUT", "5m"),
    maxConnections: int(env, "MAX_CONNECTIONS", 10_000, 1, 10_000_000),
    apiKeyLastUsedIntervalMs: duration(env, "API_KEY_LAST_USED_INTERVAL", "1m"),
  });
}
