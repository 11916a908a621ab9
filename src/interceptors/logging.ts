/**
 * One structured JSON line per call: method, protocol, code, duration, user id, request id. Never the
 * request or response messages, so passwords and tokens cannot reach the log.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { kCaller, kRequestId } from "../rpc/context.ts";
import { codeName } from "../rpc/wire-error.ts";
import { protocolOf } from "../transport/protocols/detect.ts";
import { observeStream } from "./observe-stream.ts";

const safeRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** The interceptor; `onCall` lets metrics observe the same facts. */
export function createLoggingInterceptor(opts: { log: Logger }): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const incoming = req.header.get("x-request-id");
    const requestId = incoming && safeRequestId.test(incoming) ? incoming : randomUUID();
    req.contextValues.set(kRequestId, requestId);
    const finish = (err: unknown) => {
      const internal = err !== undefined && ConnectError.from(err).code === Code.Internal;
      // Below the log level, build nothing (this runs on every call).
      if (!opts.log.isLevelEnabled(internal ? "error" : "info")) return;
      const code = err === undefined ? "OK" : codeName(ConnectError.from(err).code);
      const line = {
        method: `${req.service.typeName}/${req.method.name}`,
        protocol: protocolOf(req.header.get("content-type")),
        code,
        durationMs: Math.round((performance.now() - started) * 100) / 100,
        userId: req.contextValues.get(kCaller)?.userId,
        requestId,
      };
      if (internal) opts.log.error(line, "rpc");
      else opts.log.info(line, "rpc");
    };
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      if (!res.stream) {
        finish(undefined);
        return res;
      }
      // A reader that stops early was cancelled when the call's signal aborted (the reason carries the code).
      const stopped = () => finish(req.signal.aborted ? req.signal.reason : undefined);
      return { ...res, message: observeStream(res.message, { end: finish, stopped }) };
    } catch (err) {
      finish(err);
      throw err;
    }
  };
}
