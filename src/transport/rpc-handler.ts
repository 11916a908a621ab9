/**
 * Turns a Connect router into a Node request handler for gRPC, gRPC-web and Connect. Like connect-node's
 * own adapter, plus: unknown methods get UNIMPLEMENTED in the caller's protocol (not a bare 404), and
 * errors Connect raises before any interceptor runs (undecodable bytes, size limits) are normalised at the
 * edge (see edge-errors.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import {
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextValues,
  createServiceImplSpec,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { kClientAddress } from "../interceptors/context.ts";
import { normaliseEdgeErrors } from "./edge-errors.ts";
import { createGrpcFastPath, type UnarySpec } from "./grpc-fast-path.ts";

// HTTP/2 compat requests and responses are used through their HTTP/1.1-shaped API.
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse;

/** A Node handler that returns false when the path is not an RPC of ours. */
export type RpcHandler = (req: Req, res: Res) => boolean;

/**
 * Builds the handler, and the gRPC fast path for the unary methods of the same services (same
 * implementations, same interceptors).
 */
export function createRpcHandler(
  routes: (router: ConnectRouter) => void,
  options: ConnectRouterOptions & { interceptors: Interceptor[]; readMaxBytes: number },
): { handle: RpcHandler; grpcFastPath: ReturnType<typeof createGrpcFastPath> } {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  const unary = new Map<string, UnarySpec>();
  const recorder: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, impl, opts) {
      const spec = createServiceImplSpec(service, impl);
      for (const m of Object.values(spec.methods)) if (m.kind === "unary") unary.set(`/${service.typeName}/${m.method.name}`, m);
      router.service(service, impl, opts);
      return this;
    },
    rpc(method, impl, opts) {
      router.rpc(method, impl, opts);
      return this;
    },
  };
  routes(recorder);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, normaliseEdgeErrors(h));
  const grpcFastPath = createGrpcFastPath(unary, { interceptors: options.interceptors, readMaxBytes: options.readMaxBytes });
  const handle: RpcHandler = (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    const handler = paths.get(path);
    if (!handler) return unimplemented(req, res, path);
    const values = createContextValues().set(kClientAddress, req.socket?.remoteAddress ?? "");
    const uReq = universalRequestFromNodeRequest(req, res as never, undefined, values);
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch(() => {
        // The response could not be written: the client went away. Nothing to tell anyone.
      });
    return true;
  };
  return { handle, grpcFastPath };
}

/** UNIMPLEMENTED for a path that looks like an RPC (`/pkg.Service/Method`); false for anything else. */
function unimplemented(req: Req, res: Res, path: string): boolean {
  if (req.method !== "POST" || !/^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/.test(path)) return false;
  const type = String(req.headers["content-type"] ?? "");
  const message = encodeURIComponent(`method ${path.slice(1)} is not implemented`);
  if (type.startsWith("application/grpc")) {
    // A trailers-only response: the status travels in the headers.
    res.writeHead(200, { "content-type": type.startsWith("application/grpc-web") ? "application/grpc-web+proto" : "application/grpc", "grpc-status": "12", "grpc-message": message });
    res.end();
    return true;
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message: decodeURIComponent(message) }));
  return true;
}
