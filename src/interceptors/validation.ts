/**
 * Enforces the protovalidate rules declared in the proto on every unary request message, answering
 * INVALID_ARGUMENT with field violations (google.rpc.BadRequest) rather than protovalidate's own detail,
 * because that is what most gRPC clients know how to read. Client-streaming methods validate per message
 * themselves, so that one bad row does not end the stream.
 */
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, type Validator, type Violation } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import { type FieldViolation, invalidArgument } from "../errors.ts";

/** Converts protovalidate violations to our field violations. */
export function toFieldViolations(violations: readonly Violation[]): FieldViolation[] {
  return violations.map((v) => ({ field: pathToString(v.field), description: v.message }));
}

/** The interceptor; `validator` is shared with handlers that validate stream messages. */
export function createValidationInterceptor(opts: { validator?: Validator } = {}): Interceptor {
  const validator = opts.validator ?? createValidator();
  return (next) => async (req) => {
    if (!req.stream) {
      const result = validator.validate(req.method.input, req.message);
      if (result.kind === "invalid") throw invalidArgument(toFieldViolations(result.error.violations));
      if (result.kind === "error") throw result.error;
    }
    return next(req);
  };
}
