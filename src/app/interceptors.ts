/**
 * The interceptor chain of every RPC, outermost first, in one place:
 *
 * tracing (the span covers the rest) → metrics (sees the code the caller gets and the time of everything
 * after it) → logging → errors (maps what is thrown to wire errors) → client address (TRUST_PROXY applied to
 * kClientAddress) → auth (the proto's access policy) →
 * validation (protovalidate and the string check) → per-account rate limits (after auth: they need the
 * caller).
 */
import type { Validator } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { TrustedProxy } from "../config.ts";
import { createAuthInterceptor, type TokenVerifier } from "../interceptors/auth.ts";
import { createClientAddressInterceptor } from "../interceptors/client-address.ts";
import { createErrorsInterceptor } from "../interceptors/errors.ts";
import { createLoggingInterceptor } from "../interceptors/logging.ts";
import { createMetricsInterceptor } from "../interceptors/metrics.ts";
import { createValidationInterceptor } from "../interceptors/validation.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Tracing } from "../ops/tracing.ts";

export async function interceptorChain(opts: {
  log: Logger;
  metrics: Metrics;
  tracing: Tracing | undefined;
  verify: TokenVerifier;
  /** Services whose protos we do not own (health, reflection): no token needed. */
  publicServices: readonly string[];
  validator: Validator;
  rateLimits: Interceptor;
  /** TRUST_PROXY: whose X-Forwarded-For names the client address handlers see. */
  trustedProxies: readonly TrustedProxy[];
}): Promise<Interceptor[]> {
  const { tracing } = opts;
  // Loaded only when tracing is on: it imports OpenTelemetry.
  const tracingInterceptor = tracing
    ? (await import("../interceptors/tracing.ts")).createTracingInterceptor(tracing.tracer, tracing.propagator)
    : undefined;
  return [
    ...(tracingInterceptor ? [tracingInterceptor] : []),
    createMetricsInterceptor(opts.metrics),
    createLoggingInterceptor({ log: opts.log }),
    createErrorsInterceptor({ log: opts.log }),
    createClientAddressInterceptor(opts.trustedProxies),
    createAuthInterceptor({ verify: opts.verify, publicServices: opts.publicServices }),
    createValidationInterceptor({ validator: opts.validator }),
    opts.rateLimits,
  ];
}
