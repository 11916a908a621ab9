/**
 * OpenTelemetry tracing, switched on by configuration: a server span per RPC (child of the caller's span
 * when the call carries a W3C `traceparent`), a span per database query inside it, exported in batches over
 * OTLP/HTTP (protobuf). Every OpenTelemetry package is imported here, dynamically, and only by
 * `startTracing` (and the tracing interceptor, which the app imports only when tracing is on): a service
 * without an OTLP endpoint loads none of them, patches nothing and adds no interceptor, so tracing that is
 * off costs nothing at all.
 */
import { hostname } from "node:os";
import type { TextMapPropagator, Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { TracingConfig } from "../config.ts";

/** A running tracer. */
export interface Tracing {
  /** The tracer and the W3C propagator the server span of each call uses (src/interceptors/tracing.ts). */
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  /** Sends the spans still buffered (for at most `timeoutMs`, default 1 s) and unregisters the tracer. */
  shutdown(timeoutMs?: number): Promise<void>;
}

let running = 0;

/** True while a tracer started in this process has not been shut down (tracing being off means false). */
export function tracingActive(): boolean {
  return running > 0;
}

/** Starts the tracer provider, the exporter and the database instrumentation. */
export async function startTracing(config: TracingConfig, log: Logger): Promise<Tracing> {
  const [api, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, resources, sdk, otlp, db] =
    await Promise.all([
      import("@opentelemetry/api"),
      import("@opentelemetry/context-async-hooks"),
      import("@opentelemetry/core"),
      import("@opentelemetry/resources"),
      import("@opentelemetry/sdk-trace"),
      import("@opentelemetry/exporter-trace-otlp-proto"),
      import("./tracing-pg.ts"),
    ]);

  const ratio = new sdk.TraceIdRatioBasedSampler(config.samplerRatio);
  const roots = { always_on: new sdk.AlwaysOnSampler(), always_off: new sdk.AlwaysOffSampler(), traceidratio: ratio };
  const root = roots[config.sampler.replace("parentbased_", "") as keyof typeof roots];
  const provider = new sdk.TracerProvider({
    resource: resources
      .defaultResource()
      .merge(resources.resourceFromAttributes({ "service.name": config.serviceName, "host.name": hostname() })),
    sampler: config.sampler.startsWith("parentbased_") ? new sdk.ParentBasedSampler({ root }) : root,
    spanProcessors: [
      new sdk.BatchSpanProcessor({
        // Timeout, compression and TLS files come from the exporter's own OTEL_EXPORTER_OTLP_* variables.
        exporter: new otlp.OTLPTraceExporter({ url: config.tracesUrl, headers: { ...config.headers } }),
      }),
    ],
  });

  // Export failures and the SDK's other complaints are reported through OpenTelemetry's diag channel,
  // which is silent unless a logger is set: route warnings and errors to the service log.
  api.diag.setLogger(
    {
      error: (message) => log.error({ component: "opentelemetry" }, message),
      warn: (message) => log.warn({ component: "opentelemetry" }, message),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    api.DiagLogLevel.WARN,
  );
  // Spans find their parent through the active context, which AsyncLocalStorage carries across awaits.
  // Globals may already be set (by an agent preloaded with --import, or another app in this process):
  // then theirs are used, and left alone at shutdown.
  const ownsContext = api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const ownsProvider = api.trace.setGlobalTracerProvider(provider);
  db.instrumentPg(provider);
  running++;
  log.info({ url: config.tracesUrl, sampler: config.sampler }, "tracing to OTLP endpoint");

  const tracer = provider.getTracer("user-service");
  let stopped: Promise<void> | undefined;
  return {
    tracer,
    propagator: new W3CTraceContextPropagator(),
    shutdown(timeoutMs = 1000) {
      stopped ??= (async () => {
        running--;
        db.instrumentPg(undefined);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<"late">((done) => (timer = setTimeout(() => done("late"), timeoutMs)));
        // An unreachable collector must not hold up shutdown past the grace period: what is not sent by
        // then is lost, and the log says so.
        const outcome = await Promise.race([provider.shutdown().then(() => "sent" as const), late]);
        clearTimeout(timer);
        if (outcome === "late") log.warn({ timeoutMs }, "tracing: buffered spans not exported before shutdown");
        if (ownsProvider) api.trace.disable();
        if (ownsContext) api.context.disable();
        api.diag.disable();
      })();
      return stopped;
    },
  };
}
