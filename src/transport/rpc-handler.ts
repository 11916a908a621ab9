/**
 * Turns a Connect router into a Node request handler for gRPC, gRPC-web and Connect. Like connect-node's
 * own adapter, plus: unknown methods get UNIMPLEMENTED in the caller's protocol (not a bare 404), and
 * errors Connect raises before any interceptor runs (undecodable bytes, size limits) are normalised at the
 * edge (see edge-errors.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { type ConnectRouter, type ConnectRouterOptions, createConnectRouter, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { kClientAddress } from "../interceptors/context.ts";
import { normaliseEdgeErrors } from "./edge-errors.ts";

// HTTP/2 compat requests and responses are used through their HTTP/1.1-shaped API.
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse;

/** A Node handler that returns false when the path is not an RPC of ours. */
export type RpcHandler = (req: Req, res: Res) => boolean;

/** Builds the handler. */
export function createRpcHandler(routes: (router: ConnectRouter) => void, options: ConnectRouterOptions): RpcHandler {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, normaliseEdgeErrors(h));
  return (req, res) => {
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
