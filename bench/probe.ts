/**
 * Sends one request exactly as the load generator will (same HTTP version, headers and body bytes) and checks
 * the answer is a success carrying the user asked for. h2load cannot tell a gRPC error from a success, so
 * this runs before every load.
 */
import http from "node:http";
import http2 from "node:http2";
import { decodeResponse, GET_USER_PATH, type Protocol, type RawResponse } from "./protocols.ts";
import { benchUserEmail, benchUserIndex } from "./seed.ts";

function sendHttp2(origin: string, headers: Record<string, string>, body: Uint8Array): Promise<RawResponse> {
  return new Promise((done, fail) => {
    const session = http2.connect(origin);
    session.on("error", fail);
    const req = session.request({ ":method": "POST", ":path": GET_USER_PATH, ...headers });
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (head = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", fail);
    req.on("end", () => {
      session.close();
      done({ status: Number(head[":status"]), headers: head, trailers, body: Buffer.concat(chunks) });
    });
    req.end(body);
  });
}

function sendHttp1(origin: string, headers: Record<string, string>, body: Uint8Array): Promise<RawResponse> {
  return new Promise((done, fail) => {
    const req = http.request(new URL(GET_USER_PATH, origin), {
      method: "POST",
      headers: { ...headers, "content-length": body.length },
    });
    req.on("error", fail);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", fail);
      res.on("end", () =>
        done({
          status: res.statusCode ?? 0,
          headers: res.headers,
          trailers: res.trailers,
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.end(body);
  });
}

/** Sends `body` (a GetUser request for `userId`) and throws unless the response is that user. */
export async function probe(
  origin: string,
  protocol: Protocol,
  headers: Record<string, string>,
  body: Uint8Array,
  userId: string,
): Promise<void> {
  const send = protocol.httpVersion === "2" ? sendHttp2 : sendHttp1;
  const res = await send(origin, headers, body);
  let user: ReturnType<typeof decodeResponse>["user"];
  try {
    user = decodeResponse(protocol, res).user;
  } catch (err) {
    throw new Error(`probe over ${protocol.name} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const index = benchUserIndex(userId);
  if (user?.id !== userId || index === undefined || user.email !== benchUserEmail(index)) {
    throw new Error(`probe over ${protocol.name} asked for ${userId} but got ${user?.id} <${user?.email}>`);
  }
}
