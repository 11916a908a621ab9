/**
 * Refusing a call that `admit` turned away (a rate limit) through connect-node's adapter, in the caller's
 * own protocol, without reading its body and without running its implementation or interceptors: such
 * calls go to a second router whose every method fails with the refusal, and get a body that fails when
 * read. (A unary or server-streaming call reads its body before its implementation runs; a client stream
 * runs its implementation first, which fails at once; Connect GET has no body at all.)
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { type ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The refusal of the call being served by the refusing router. */
export const kRefusal = createContextKey<ConnectError | undefined>(undefined, { description: "admission refusal" });

function fail(ctx: HandlerContext): never {
  throw ctx.values.get(kRefusal);
}

/** An implementation of one method that answers every call with its refusal. */
export function refusingMethod(method: DescMethod) {
  return method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming"
    ? // biome-ignore lint/correctness/useYield: it only ever throws.
      async function* (_req: unknown, ctx: HandlerContext) {
        fail(ctx);
      }
    : async (_req: unknown, ctx: HandlerContext) => fail(ctx);
}

/** An implementation of a whole service that answers every call with its refusal. */
export function refusingService(service: DescService): Record<string, ReturnType<typeof refusingMethod>> {
  return Object.fromEntries(service.methods.map((m) => [m.localName, refusingMethod(m)]));
}

/** A request body that fails when first read: connect-node then answers `err` in the caller's protocol. */
// biome-ignore lint/correctness/useYield: it only ever throws.
export async function* refusedBody(err: ConnectError): AsyncGenerator<Uint8Array> {
  throw err;
}
