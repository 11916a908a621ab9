/**
 * Turns a Connect router into a Node request handler for gRPC, gRPC-web and Connect. Like connect-node's
 * own adapter, plus: unknown methods get UNIMPLEMENTED in the caller's protocol (not a bare 404), and
 * errors Connect raises before any interceptor runs (undecodable bytes, size limits) are normalised at the
 * edge (see edge-errors.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { constants, type Http2ServerRequest, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import {
  Code,
  type ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextValues,
  createServiceImplSpec,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Admit } from "../rpc/admit.ts";
import { kClientAddress } from "../rpc/context.ts";
import { connectErrorFor } from "../rpc/wire-error.ts";
import { kRefusal, refusedBody, refusingMethod, refusingService } from "./admission.ts";
import { normaliseEdgeErrors } from "./edge-errors.ts";
import { admitThen, budgetedBody, budgetOf } from "./request.ts";
import { createServerStreamPath, type ServerStreamSpec } from "./stream/server-stream.ts";
import { createUnaryFastPath, type UnarySpec } from "./unary/fast-path.ts";
import { connectJson, grpc, grpcWeb } from "./unary/protocols.ts";

// HTTP/2 compat requests and responses are used through their HTTP/1.1-shaped API.
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse;

/** A Node handler that returns false when the path is not an RPC of ours. */
export type RpcHandler = (req: Req, res: Res) => boolean;

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
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, normaliseEdgeErrors(h));
  const refusingPaths = new Map<string, UniversalHandler>();
  for (const h of refusing.handlers) refusingPaths.set(h.requestPath, normaliseEdgeErrors(h));
  const fast = fastPath
    ? createUnaryFastPath(unary, {
        interceptors: options.interceptors,
        readMaxBytes: options.readMaxBytes,
        shutdownSignal: options.shutdownSignal,
        admit: options.admit,
      })
    : undefined;
  const streamPath = fastPath
    ? createServerStreamPath(serverStreams, {
        interceptors: options.interceptors,
        readMaxBytes: options.readMaxBytes,
        shutdownSignal: options.shutdownSignal,
        admit: options.admit,
      })
    : undefined;
  const handle: RpcHandler = (req, res) => {
    if (fast && "socket" in req && !("stream" in req) && fast.h1(req as IncomingMessage, res)) return true;
    const path = (req.url ?? "").split("?", 1)[0];
    const handler = paths.get(path);
    if (!handler) return unimplemented(req, res, path);
    const peer = req.socket?.remoteAddress ?? "";
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(", ") : v;
    };
    void admitThen(
      options.admit,
      () => ({ path, header, peer }),
      async (denied) =>
        adapt(req, res, denied ? (refusingPaths.get(path) ?? handler) : handler, peer, denied, clientStreams.has(path)),
    );
    return true;
  };
  const h2Stream =
    fast && streamPath
      ? (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) =>
          fast.h2(stream, headers) || streamPath(stream, headers)
      : undefined;
  return { handle, h2Stream };
}

/** A body of several messages in envelopes (gRPC, gRPC-web binary, Connect streaming). */
function envelopedType(type: string): boolean {
  return (
    (type.startsWith("application/grpc") && !type.startsWith("application/grpc-web-text")) ||
    type.startsWith("application/connect+")
  );
}

/**
 * Serves a request through connect-node's adapter, its body read under the connection's budget (or
 * refused unread when `denied`). A request answered before its body was complete is not read further:
 * its HTTP/2 stream is reset with NO_ERROR, its HTTP/1.1 connection closed, once the answer is out.
 */
async function adapt(
  req: Req,
  res: Res,
  handler: UniversalHandler,
  peer: string,
  denied: ConnectError | undefined,
  clientStream: boolean,
): Promise<void> {
  if ("stream" in req) {
    // Node's compatibility response always ends with trailers, sent from its own 'wantTrailers' listener;
    // a reset sent in the same turn overtakes them, so it waits a turn, as Node's own close does.
    const stream = req.stream;
    stream.once("wantTrailers", () =>
      setImmediate(() => {
        if (!req.complete && !stream.closed) stream.close(constants.NGHTTP2_NO_ERROR);
      }),
    );
  } else {
    res.once("finish", () => {
      if (!req.complete) req.socket.destroySoon();
    });
  }
  if (denied && !("stream" in req) && !req.complete) res.setHeader("connection", "close");
  const values = createContextValues().set(kClientAddress, peer).set(kRefusal, denied);
  const uReq: UniversalServerRequest = universalRequestFromNodeRequest(req, res as never, undefined, values);
  const type = String(req.headers["content-type"] ?? "");
  const body = denied
    ? refusedBody(denied)
    : budgetedBody(
        req,
        "stream" in req ? budgetOf(req.stream.session) : undefined,
        clientStream && envelopedType(type),
      );
  try {
    await universalResponseToNodeResponse(await handler({ ...uReq, body }), res as never);
  } catch {
    // The response could not be written: the client went away. Nothing to tell anyone.
  }
}

/** UNIMPLEMENTED for a path that looks like an RPC (`/pkg.Service/Method`); false for anything else. */
function unimplemented(req: Req, res: Res, path: string): boolean {
  if (req.method !== "POST" || !/^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/.test(path)) return false;
  const type = String(req.headers["content-type"] ?? "");
  const protocol = type.startsWith("application/grpc-web")
    ? grpcWeb
    : type.startsWith("application/grpc")
      ? grpc
      : connectJson;
  const wire = protocol.failure(
    connectErrorFor("UNIMPLEMENTED", Code.Unimplemented, `method ${path.slice(1)} is not implemented by this server`),
    new Headers(),
  );
  if ("stream" in req && wire.body === undefined) {
    // A gRPC trailers-only response must end the stream with its HEADERS frame.
    req.stream.respond({ ":status": wire.status, ...wire.headers }, { endStream: true });
    return true;
  }
  // Connect answers an unknown route with 404 (what its clients map to UNIMPLEMENTED), not 501.
  res.writeHead(protocol === connectJson ? 404 : wire.status, wire.headers);
  res.end(wire.body);
  return true;
}
