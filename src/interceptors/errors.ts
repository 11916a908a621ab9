/**
 * Maps whatever a handler or a later interceptor throws to the wire error the caller gets
 * (src/rpc/wire-error.ts), including errors raised while a server stream is being read.
 */
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { toWireError } from "../rpc/wire-error.ts";
import { observeStream } from "./observe-stream.ts";

/** The interceptor; it also maps errors raised while a server stream is being read. */
export function createErrorsInterceptor(opts: { log: Logger }): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: observeStream(res.message, { mapError: (err) => toWireError(err, opts.log, method) }) };
    } catch (err) {
      throw toWireError(err, opts.log, method);
    }
  };
}
