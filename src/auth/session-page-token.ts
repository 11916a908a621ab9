/**
 * Page tokens of ListSessions and ListUserSessions: base64url of an HMAC-SHA256 tag followed by a small JSON
 * body, the position of the last session of the page (its create_time to the microsecond and its id). The
 * tag covers the user whose sessions are listed too, so a token is good only for the listing it came from,
 * and a caller can neither forge a position nor replay a token against another user. Sealed by
 * src/rpc/signed-token.ts, with a key and a context of its own.
 */
import { createSignedTokens } from "../rpc/signed-token.ts";
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

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A codec keyed by `key` (at least 32 bytes; derive it from a server secret, so replicas agree). */
export function createSessionPageTokens(key: string | Uint8Array): SessionPageTokens {
  const tokens = createSignedTokens(key, "sessions page token v1");
  const invalid = () => new PageTokenError("not a page token of this listing, or it was modified");

  return {
    encode(userId, cursor) {
      return tokens.seal(userId.toLowerCase(), [cursor.createTime, cursor.id]);
    },

    decode(userId, token) {
      if (token === "") return null;
      const parsed = tokens.open(userId.toLowerCase(), token);
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
