/**
 * Header helpers the protocols share. Responses are written as plain records (Node's `respond` and
 * `writeHead` take them), so the Headers that interceptors fill are copied out once, here.
 */
import type { IncomingHttpHeaders } from "node:http";

/** `h` copied into `into`, each name with `prefix`. */
export function toObject(h: Headers, into: Record<string, string> = {}, prefix = ""): Record<string, string> {
  h.forEach((v, k) => {
    into[prefix + k] = v;
  });
  return into;
}

/** One request header as a string (the protocols' headers are single-valued). */
export function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  return headers[name] as string | undefined;
}

/** True for no content coding (absent or `identity`). */
export function identity(encoding: string | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}
