/**
 * Enforces the protovalidate rules declared in the proto on every unary request message, answering
 * INVALID_ARGUMENT with field violations (google.rpc.BadRequest) rather than protovalidate's own detail,
 * because that is what most gRPC clients know how to read. A server-streaming call has exactly one request
 * message, which Connect hands interceptors as a stream: it is read and validated here too, before the
 * handler starts. Client-streaming methods validate per message themselves, so that one bad row does not
 * end the stream. Before the declared rules, every string field is checked for what the database cannot
 * store (a NUL character, invalid UTF-8: see strings.ts), which no proto rule expresses.
 */
import { createValidator, type Validator } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import { invalidArgument, toFieldViolations } from "../rpc/errors.ts";
import { reportInvalidUtf8, stringViolations } from "../rpc/strings.ts";

/** The interceptor; `validator` is shared with handlers that validate stream messages. */
export function createValidationInterceptor(opts: { validator?: Validator } = {}): Interceptor {
  const validator = opts.validator ?? createValidator();
  reportInvalidUtf8();
  return (next) => async (req) => {
    const check = (message: Parameters<Validator["validate"]>[1]) => {
      const bad = stringViolations(req.method.input, message);
      if (bad.length > 0) throw invalidArgument(bad);
      const result = validator.validate(req.method.input, message);
      if (result.kind === "invalid") throw invalidArgument(toFieldViolations(result.error.violations));
      if (result.kind === "error") throw result.error;
    };
    if (!req.stream) {
      check(req.message);
    } else if (req.method.methodKind === "server_streaming") {
      const messages = req.message[Symbol.asyncIterator]();
      const first = await messages.next();
      if (!first.done) check(first.value);
      const rest = { [Symbol.asyncIterator]: () => messages };
      return next({
        ...req,
        message: (async function* () {
          if (!first.done) yield first.value;
          yield* rest;
        })(),
      });
    }
    return next(req);
  };
}
