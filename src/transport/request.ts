/**
 * Reading a request as the fast paths need it: headers as a plain record (pseudo-headers left out) and the
 * whole body up to a limit.
 */
import type { IncomingHttpHeaders } from "node:http2";

/** Request headers as a plain record (createHandlerContext builds its one Headers object from it). */
export function requestHeaders(raw: IncomingHttpHeaders): Record<string, string> {
  const h: Record<string, string> = {};
  for (const k in raw) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = raw[k];
    if (v !== undefined) h[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return h;
}

/** Reads a whole body up to a limit; resolves undefined when it is over the limit or the stream fails. */
export function readBody(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer | undefined> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      else chunks.push(chunk);
    });
    stream.on("end", () => done(over ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    stream.on("error", () => done(undefined));
  });
}
