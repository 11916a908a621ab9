/**
 * ListUserChanges' page tokens: base64url of an HMAC-SHA256 tag and a small JSON body, the position of the
 * last change of the page (history is newest first, by change_time then seq). The tag covers the listed user_id (or none: everyone)
 * and the checked filter too, so a token is good only for the listing it came from: modified, or replayed
 * with another user_id or filter, it is INVALID_PAGE_TOKEN. Sealed by
 * src/rpc/signed-token.ts, with a key and a context of its own.
 */
import { createSignedTokens } from "../../rpc/signed-token.ts";
import { PageTokenError } from "../list/index.ts";
import type { HistoryFilter } from "./history-filter.ts";

/** What a token is bound to. */
export interface HistoryListing {
  readonly userId: string;
  readonly filter: HistoryFilter;
}

/** Where the next page starts: below this change, in (change_time desc, seq desc) order. */
export interface HistoryCursor {
  /** change_time as PostgreSQL gives it to the microsecond (ISO 8601, UTC). */
  readonly time: string;
  readonly seq: number;
}

export interface HistoryPageTokens {
  encode(listing: HistoryListing, cursor: HistoryCursor): string;
  /** The cursor in `token` (null for an empty token: the first page), or PageTokenError. */
  decode(listing: HistoryListing, token: string): HistoryCursor | null;
}

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** A codec keyed by `key` (at least 32 bytes; derive it from a server secret, so replicas agree). */
export function createHistoryPageTokens(key: string | Uint8Array): HistoryPageTokens {
  const tokens = createSignedTokens(key, "user.v1.ListUserChanges page token v1");
  const binding = (l: HistoryListing) => JSON.stringify([l.userId.toLowerCase(), l.filter]);
  const invalid = () =>
    new PageTokenError("not a page token of this listing (the same user_id and filter), or it was modified");

  return {
    encode(listing, cursor) {
      return tokens.seal(binding(listing), [cursor.time, cursor.seq]);
    },

    decode(listing, token) {
      if (token === "") return null;
      const parsed = tokens.open(binding(listing), token);
      // Checked although the tag vouches for it: a token is never trusted into SQL on the key alone.
      if (!Array.isArray(parsed) || parsed.length !== 2) throw invalid();
      const [time, seq] = parsed as unknown[];
      if (typeof time !== "string" || !TIME.test(time) || !Number.isSafeInteger(seq) || (seq as number) < 1) {
        throw invalid();
      }
      return { time, seq: seq as number };
    },
  };
}
