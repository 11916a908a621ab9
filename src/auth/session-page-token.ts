/**
 * Page tokens of ListSessions and ListUserSessions: base64url of an HMAC-SHA256 tag followed by a small JSON
 * body, the position of the last session of the page (its create_time to the microsecond and its id). The
 * tag covers the user whose sessions are listed too, so a token is good only for the listing it came from,
 * and a caller can neither forge a position nor replay a token against another user. Same construction as
 * ListUsers' tokens (src/users/list/page-token.ts), with a key and a context of its own.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { PageTokenError } from "../users/list/index.ts";

/** Where the next page starts: after this session, in (create_time desc, id desc) order. */
export interface SessionCursor {
  /** create_time, as PostgreSQL gives it to the microsecond (ISO 8601, UTC). */
  readonly createTime: string;
  readonly id: string;
}

/** Makes and checks the tokens, bound to the listed user. */
export interface SessionPageTokens {
  encode(userId: string, cursor: SessionCursor): string;
  /** The cursor in `token` (null for an empty token: the first page), or PageTokenError. */
  decode(userId: string, token: string): SessionCursor | null;
}

const TAG_BYTES = 32;
/** Domain separation: a tag made here means nothing to any other use of the same key. */
const CONTEXT = "sessions page token v1\n";
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A codec keyed by `key` (at least 32 bytes; derive it from a server secret, so replicas agree). */
export function createSessionPageTokens(key: string | Uint8Array): SessionPageTokens {
  if (Buffer.byteLength(key) < 32) throw new RangeError("page token key must be at least 32 bytes");
  const tag = (userId: string, body: Buffer) =>
    createHmac("sha256", key).update(CONTEXT).update(userId.toLowerCase()).update("\n").update(body).digest();
  const invalid = () => new PageTokenError("not a page token of this listing, or it was modified");

  return {
    encode(userId, cursor) {
      const body = Buffer.from(JSON.stringify([cursor.createTime, cursor.id]));
      return Buffer.concat([tag(userId, body), body]).toString("base64url");
    },

    decode(userId, token) {
      if (token === "") return null;
      if (!BASE64URL.test(token)) throw invalid();
      const raw = Buffer.from(token, "base64url");
      // Node's decoder skips stray characters; only the canonical spelling of the bytes is accepted.
      if (raw.length <= TAG_BYTES || raw.toString("base64url") !== token) throw invalid();
      const body = raw.subarray(TAG_BYTES);
      if (!timingSafeEqual(raw.subarray(0, TAG_BYTES), tag(userId, body))) throw invalid();
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch {
        throw invalid();
      }
      // Checked although the tag vouches for it: a token is never trusted into SQL on the key alone.
      if (!Array.isArray(parsed) || parsed.length !== 2) throw invalid();
      const [createTime, id] = parsed as unknown[];
      if (typeof createTime !== "string" || !TIME.test(createTime) || typeof id !== "string" || !UUID.test(id)) {
        throw invalid();
      }
      return { createTime, id };
    },
  };
}
