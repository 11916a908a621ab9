/**
 * Opaque, tamper-evident tokens (the page tokens of ListSessions, ListUserSessions, ListUserChanges and
 * ListAuthEvents): base64url of an HMAC-SHA256 tag followed by a JSON body. The tag covers a context (domain
 * separation: a tag made for one use means nothing to another use of the same key) and a binding (what the
 * token was made for: the listed user, the filter), so a token is good only where it came from, and a caller
 * can neither forge a body nor replay a token against another listing. Callers still check the body's shape:
 * a token is never trusted into SQL on the key alone.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const TAG_BYTES = 32;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Seals and opens tokens for one use. */
export interface SignedTokens {
  seal(binding: string, body: unknown): string;
  /** The body of a token sealed with this binding, or undefined when it was not (modified, another listing). */
  open(binding: string, token: string): unknown;
}

/** Tokens keyed by `key` (at least 32 bytes; derived from a server secret, so replicas agree) for `context`. */
export function createSignedTokens(key: string | Uint8Array, context: string): SignedTokens {
  if (Buffer.byteLength(key) < 32) throw new RangeError("token key must be at least 32 bytes");
  const prefix = `${context}\n`;
  const tag = (binding: string, body: Buffer) =>
    createHmac("sha256", key).update(prefix).update(binding).update("\n").update(body).digest();
  return {
    seal(binding, body) {
      const bytes = Buffer.from(JSON.stringify(body));
      return Buffer.concat([tag(binding, bytes), bytes]).toString("base64url");
    },
    open(binding, token) {
      if (!BASE64URL.test(token)) return undefined;
      const raw = Buffer.from(token, "base64url");
      // Node's decoder skips stray characters; only the canonical spelling of the bytes is accepted.
      if (raw.length <= TAG_BYTES || raw.toString("base64url") !== token) return undefined;
      const body = raw.subarray(TAG_BYTES);
      if (!timingSafeEqual(raw.subarray(0, TAG_BYTES), tag(binding, body))) return undefined;
      try {
        return JSON.parse(body.toString("utf8"));
      } catch {
        return undefined;
      }
    },
  };
}
