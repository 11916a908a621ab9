/**
 * Everything the own paths decline (compression, gRPC-web text, Connect GET and JSON streams, client and
 * bidi streams, HTTP/1.1 streams, and every call when UNARY_FAST_PATH=false) is served by connect-node's
 * router handlers, which know every protocol feature. Around them, this adds what connect-node does not do:
 * admission before the body is read, the per-connection body budget, the reset of a body left unread, the
 * edge-error normalisation, and UNIMPLEMENTED in the caller's protocol for an unknown method.
 *
 * Why not connect-node's own `connectNodeAdapter` with its `contextValues` and `fallback` options: it calls
 * the router's handler at once with a body it reads itself, with no hook between the two. Admission is
 * asynchronous (the rate-limit store) and picks the handler (the refusing router's for a refused call); the
 * body must be read under the connection's budget, and without destroying the request when the handler
 * stops early, or the answer would be lost to a reset; the unread-body reset needs the Node response. Using
 * it would mean rewriting the handlers in its router's internal `handlers` array and passing the Node
 * request and response to them on the side; and its `.catch` prints to stderr every failure to write a
 * response but the few it takes for a client that left, where the log is JSON lines. So the adapter is rebuilt here from the pieces connect-node exports for adapters
 * (`universalRequestFromNodeRequest`, which takes the context values, and `universalResponseToNodeResponse`),
 * as the adapter itself is, with a fallback for unknown paths.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { constants, type Http2ServerRequest } from "node:http2";
import { Code, type ConnectError, createContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { Admit } from "../../rpc/admit.ts";
import { kClientAddress } from "../../rpc/context.ts";
import { connectErrorFor } from "../../rpc/wire-error.ts";
import { kRefusal, refusedBody } from "../admission.ts";
import { protocolFor } from "../protocols/detect.ts";
import { admitThen, budgetedBody, budgetOf } from "../request.ts";

// HTTP/2 compat requests and responses are used through their HTTP/1.1-shaped API.
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse;

/** A Node handler that returns false when the path is not an RPC of ours. */
export type RpcHandler = (req: Req, res: Res) => boolean;

/** A router's handler with connect-node's own errors rewritten to meet the contract (Protocol.normaliseErrors). */
function normaliseEdgeErrors(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: UniversalServerRequest) =>
    protocolFor(req.header.get("content-type")).normaliseErrors(await handler(req));
  return Object.assign(wrapped, handler) as UniversalHandler;
}

/**
 * The handler over the routers' handlers: `handlers` serve admitted calls, `refusing` (same paths, every
 * method failing with the call's refusal, no interceptors) the refused ones. `clientStreams` are the paths
 * whose request is a stream of messages, whose body gives budget back message by message.
 */
export function createConnectAdapter(
  handlers: readonly UniversalHandler[],
  refusing: readonly UniversalHandler[],
  clientStreams: ReadonlySet<string>,
  admit: Admit | undefined,
): RpcHandler {
  const paths = new Map<string, UniversalHandler>();
  for (const h of handlers) paths.set(h.requestPath, normaliseEdgeErrors(h));
  const refusingPaths = new Map<string, UniversalHandler>();
  for (const h of refusing) refusingPaths.set(h.requestPath, normaliseEdgeErrors(h));
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    const handler = paths.get(path);
    if (!handler) return unimplemented(req, res, path);
    const peer = req.socket?.remoteAddress ?? "";
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(", ") : v;
    };
    void admitThen(
      admit,
      () => ({ path, header, peer }),
      async (denied) =>
        serve(req, res, denied ? (refusingPaths.get(path) ?? handler) : handler, peer, denied, clientStreams.has(path)),
    );
    return true;
  };
}

/**
 * Serves a request through a router's handler, its body read under the connection's budget (or refused
 * unread when `denied`). A request answered before its body was complete is not read further: its HTTP/2
 * stream is reset with NO_ERROR, its HTTP/1.1 connection closed, once the answer is out.
 */
async function serve(
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
  let uReq: UniversalServerRequest;
  try {
    uReq = universalRequestFromNodeRequest(req, res as never, undefined, values);
  } catch {
    // A request without an authority (HTTP/1.0 without Host) cannot become connect's request. Left
    // uncaught, this would be an unhandled rejection, which ends the process.
    res.writeHead(400, { "content-type": "text/plain" });
    res.end("bad request: no Host header\n");
    return;
  }
  const type = String(req.headers["content-type"] ?? "");
  const body = denied
    ? refusedBody(denied)
    : budgetedBody(
        req,
        "stream" in req ? budgetOf(req.stream.session) : undefined,
        clientStream && protocolFor(type).enveloped(type),
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
  const wire = protocolFor(req.headers["content-type"]).unimplemented(
    connectErrorFor("UNIMPLEMENTED", Code.Unimplemented, `method ${path.slice(1)} is not implemented by this server`),
  );
  if ("stream" in req && wire.body === undefined) {
    // A gRPC trailers-only response must end the stream with its HEADERS frame.
    req.stream.respond({ ":status": wire.status, ...wire.headers }, { endStream: true });
    return true;
  }
  res.writeHead(wire.status, wire.headers);
  res.end(wire.body);
  return true;
}
