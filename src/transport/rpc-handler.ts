/**
 * The RPC entry of the listener: a Connect router's services served in gRPC, gRPC-web and Connect. Each
 * method goes to the driver for its kind (drivers/), which asks the call's protocol (protocols/) for the
 * wire rules: the unary and HTTP/2 server-stream paths serve the plain cases themselves, connect-node's
 * handlers everything else.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import {
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createServiceImplSpec,
  type Interceptor,
} from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Admit } from "../rpc/admit.ts";
import { refusingMethod, refusingService } from "./admission.ts";
import { createConnectAdapter, type RpcHandler } from "./drivers/connect-adapter.ts";
import { createServerStreamDriver, type ServerStreamSpec } from "./drivers/server-stream.ts";
import { createUnaryDriver, type UnarySpec } from "./drivers/unary.ts";

export type { RpcHandler };

/**
 * Builds the handler, and the fast paths for HTTP/2 unary and server-streaming calls of the same services
 * (same implementations, same interceptors).
 */
export function createRpcHandler(
  routes: (router: ConnectRouter) => void,
  options: ConnectRouterOptions & {
    interceptors: Interceptor[];
    readMaxBytes: number;
    /** Called for every RPC before its body is read; an error returned is the call's answer (the body is never read). */
    admit?: Admit;
  },
  fastPath = true,
): {
  handle: RpcHandler;
  h2Stream: ((stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean) | undefined;
} {
  const routerOptions = { acceptCompression: [compressionGzip, compressionBrotli], ...options };
  const router = createConnectRouter(routerOptions);
  // Serves the calls `admit` refused (admission.ts): no interceptors, every method fails with the refusal.
  const refusing = createConnectRouter({ ...routerOptions, interceptors: [] });
  const unary = new Map<string, UnarySpec>();
  const serverStreams = new Map<string, ServerStreamSpec>();
  // Methods whose request is a stream of messages (client and bidi streaming).
  const clientStreams = new Set<string>();
  const recorder: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, impl, opts) {
      const spec = createServiceImplSpec(service, impl);
      for (const m of Object.values(spec.methods)) {
        const path = `/${service.typeName}/${m.method.name}`;
        if (m.kind === "unary") unary.set(path, m);
        else if (m.kind === "server_streaming") serverStreams.set(path, m);
        else clientStreams.add(path);
      }
      router.service(service, impl, opts);
      refusing.service(service, refusingService(service) as never);
      return this;
    },
    rpc(method, impl, opts) {
      router.rpc(method, impl, opts);
      refusing.rpc(method, refusingMethod(method) as never);
      return this;
    },
  };
  routes(recorder);
  const adapter = createConnectAdapter(router.handlers, refusing.handlers, clientStreams, options.admit);
  if (!fastPath) return { handle: adapter, h2Stream: undefined };
  const driverOptions = {
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    admit: options.admit,
  };
  const fast = createUnaryDriver(unary, driverOptions);
  const streams = createServerStreamDriver(serverStreams, driverOptions);
  return {
    handle: (req, res) => ("socket" in req && !("stream" in req) && fast.h1(req, res)) || adapter(req, res),
    h2Stream: (stream, headers) => fast.h2(stream, headers) || streams(stream, headers),
  };
}
