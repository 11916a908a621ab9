/**
 * The server span of every call, loaded only when tracing is on (src/ops/tracing.ts). It continues the
 * caller's trace when the call carries a W3C `traceparent` (and `tracestate`), and makes the span the
 * active context for the rest of the call, so database spans become its children, in server streams too.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { protocolOf } from "../transport/protocols/detect.ts";

const fromHeaders: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

// The semantic conventions for RPC servers: only codes that say the server failed mark the span as an
// error; NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED... are answers about the caller's request.
const serverFaults = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

function end(span: Span, protocol: ReturnType<typeof protocolOf>, err: unknown): void {
  const failure = err === undefined ? undefined : ConnectError.from(err);
  const code: number = failure?.code ?? 0;
  if (protocol !== "connect") span.setAttribute("rpc.grpc.status_code", code);
  else if (failure) span.setAttribute("rpc.connect_rpc.error_code", codeToString(failure.code));
  if (failure && serverFaults.has(failure.code))
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
  span.end();
}

/** Steps through a response stream inside `ctx`: a generator's body runs in the context of whoever resumes it. */
async function* within<T>(ctx: Context, stream: AsyncIterable<T>, done: (err: unknown) => void): AsyncGenerator<T> {
  const it = stream[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const step = await context.with(ctx, () => it.next());
      if (step.done) break;
      yield step.value;
    }
    finished = true;
    done(undefined);
  } catch (err) {
    finished = true;
    done(err);
    throw err;
  } finally {
    // The caller stopped reading (went away, or the server is shutting down): let the stream clean up.
    if (!finished) await context.with(ctx, () => it.return?.());
  }
}

/** The interceptor; it belongs first in the chain so its span covers the others and sees the final code. */
export function createTracingInterceptor(tracer: Tracer, propagator: TextMapPropagator): Interceptor {
  return (next) => async (req) => {
    const parent = propagator.extract(ROOT_CONTEXT, req.header, fromHeaders);
    const protocol = protocolOf(req.header.get("content-type"));
    const span = tracer.startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          "rpc.system": protocol === "connect" ? "connect_rpc" : "grpc",
          "rpc.service": req.service.typeName,
          "rpc.method": req.method.name,
          "rpc.protocol": protocol,
        },
      },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    let ended = false;
    const done = (err: unknown) => {
      if (ended) return;
      ended = true;
      end(span, protocol, err);
    };
    if (req.stream) {
      // A stream abandoned by its client ends when the call's signal aborts, even if nobody reads on.
      req.signal.addEventListener("abort", () => done(req.signal.reason), { once: true });
    }
    try {
      const res = await context.with(ctx, () => next(req));
      if (!res.stream) {
        done(undefined);
        return res;
      }
      return { ...res, message: within(ctx, res.message, done) };
    } catch (err) {
      done(err);
      throw err;
    }
  };
}
