/**
 * Feeds the RPC metrics. It must come first in the interceptor list, so it sees the code the caller gets
 * (after the errors interceptor has mapped it) and the time spent in every other interceptor.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Metrics } from "../ops/metrics.ts";
import { codeName } from "../rpc/wire-error.ts";
import { protocolOf } from "../transport/protocols/detect.ts";
import { observeStream } from "./observe-stream.ts";

const codeOf = (err: unknown) => (err === undefined ? "OK" : codeName(ConnectError.from(err).code));

/**
 * Counts every call by service, method, protocol and code, times unary calls, and tracks open streams.
 * A stream counts as closed however it ends: completed, failed, or abandoned when the client goes away or
 * the server shuts down (the call's signal aborts even when nobody reads the stream to its end).
 */
export function createMetricsInterceptor(metrics: Metrics): Interceptor {
  const { handled, latency, openStreams } = metrics.rpc;
  return (next) => async (req) => {
    const labels = {
      service: req.service.typeName,
      method: req.method.name,
      protocol: protocolOf(req.header.get("content-type")),
    };
    if (!req.stream) {
      const started = performance.now();
      const record = (err: unknown) => {
        const code = codeOf(err);
        handled.inc({ ...labels, code });
        latency.observe({ ...labels, code }, (performance.now() - started) / 1000);
      };
      try {
        const res = await next(req);
        record(undefined);
        return res;
      } catch (err) {
        record(err);
        throw err;
      }
    }

    const streamLabels = { service: labels.service, method: labels.method };
    openStreams.inc(streamLabels);
    let ended = false;
    const end = (err: unknown) => {
      if (ended) return;
      ended = true;
      openStreams.dec(streamLabels);
      handled.inc({ ...labels, code: codeOf(err) });
    };
    const signal = req.signal;
    signal.addEventListener("abort", () => end(signal.reason), { once: true });
    try {
      const res = await next(req);
      if (!res.stream) throw new ConnectError("a streaming call got a unary response", Code.Internal);
      // A reader that stops early is counted by the abort of the call's signal.
      return { ...res, message: observeStream(res.message, { end }) };
    } catch (err) {
      end(err);
      throw err;
    }
  };
}
