/**
 * Raw HTTP exchanges, for what no well-behaved client sends: undecodable bytes, oversized or
 * compression-bomb bodies, unknown paths, CORS preflights. gRPC needs HTTP/2 (node:http2); Connect and
 * CORS go through fetch (HTTP/1.1).
 */
import { execFile } from "node:child_process";
import * as http2 from "node:http2";

/** A gRPC length-prefixed message: flag byte (1 = compressed), 4-byte big-endian length, payload. */
export function grpcFrame(payload: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + payload.byteLength);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(payload.byteLength, 1);
  out.set(payload, 5);
  return out;
}

/** What an HTTP/2 exchange answered: response headers, trailers (empty for trailers-only) and body. */
export interface Http2Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * The status fields of a gRPC or gRPC-web answer, wherever they travel: the headers of a trailers-only
 * response, HTTP/2 trailers (gRPC), or the trailer frame at the end of the body (gRPC-web, flag 0x80).
 */
export function grpcTrailersOf(a: Http2Answer): Record<string, string> {
  const out: Record<string, string> = {};
  const take = (h: http2.IncomingHttpHeaders) => {
    for (const [k, v] of Object.entries(h)) if (k.startsWith("grpc-") && v !== undefined) out[k] = String(v);
  };
  take(a.headers);
  take(a.trailers);
  for (let at = 0; at + 5 <= a.body.byteLength; ) {
    const flag = a.body[at];
    const len = a.body.readUInt32BE(at + 1);
    if (flag & 0x80) {
      for (const line of a.body
        .subarray(at + 5, at + 5 + len)
        .toString()
        .split("\r\n")) {
        const i = line.indexOf(":");
        if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
    }
    at += 5 + len;
  }
  return out;
}

/** The gRPC status code and (decoded) message of a gRPC or gRPC-web answer; NaN when there is none. */
export function grpcStatusOf(a: Http2Answer): { status: number; message: string } {
  const t = grpcTrailersOf(a);
  return {
    status: t["grpc-status"] === undefined ? Number.NaN : Number(t["grpc-status"]),
    message: decodeURIComponent(t["grpc-message"] ?? ""),
  };
}

/** POSTs `body` to `path` over cleartext HTTP/2 (prior knowledge) with the given headers. */
export function http2Post(
  baseUrl: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
): Promise<Http2Answer> {
  return new Promise((done, fail) => {
    const session = http2.connect(baseUrl);
    session.on("error", fail);
    const req = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (responseHeaders = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", (err) => {
      session.close();
      fail(err);
    });
    req.on("end", () => {
      session.close();
      done({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    req.end(body);
  });
}

/** A gRPC request over raw HTTP/2: `application/grpc`, the given (already framed) body. */
export function grpcRaw(
  baseUrl: string,
  path: string,
  framed: Uint8Array,
  headers: Record<string, string> = {},
): Promise<Http2Answer> {
  return http2Post(baseUrl, path, { "content-type": "application/grpc", ...headers }, framed);
}

/** The result of running curl: exit code, stdout, stderr. */
export interface CurlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the curl binary with `args` (no shell involved). */
export function curl(args: string[]): Promise<CurlResult> {
  return new Promise((done) => {
    execFile("curl", args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      done({ exitCode: code, stdout, stderr });
    });
  });
}
