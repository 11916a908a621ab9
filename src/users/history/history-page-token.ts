/**
 * ListUserChanges' page tokens: base64url of an HMAC-SHA256 tag and a small JSON body, the position of the
 * last change of the page (history is newest first, by change_time then seq). The tag covers the listed user_id (or none: everyone)
 * and the checked filter too, so a token is good only for the listing it came from: modified, or replayed
 * with another user_id or filter, it is INVALID_PAGE_TOKEN. The construction of ListUsers' and sessions'
 * tokens, with a key and a context of its own.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { PageTokenError } from "../list/index.ts";
import type { HistoryFilter } from "./history-filter.ts";

/** What a token is bound to. */
export interface HistoryListing {
  readonly userId: string;
  readonly filter: HistoryFilter | null;
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

const TAG_BYTES = 32;
const CONTEXT = "user.v1.ListUserChanges page token v1\n";
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** A codec keyed by `key` (at least 32 bytes; derive it from a server secret, so replicas agree). */
export function createHistoryPageTokens(key: string | Uint8Array): HistoryPageTokens {
  if (Buffer.byteLength(key) < 32) throw new RangeError("page token key must be at least 32 bytes");
  const tag = (l: HistoryListing, body: Buffer) =>
    createHmac("sha256", key)
      .update(CONTEXT)
      .update(JSON.stringify([l.userId.toLowerCase(), l.filter]))
      .update("\n")
      .update(body)
      .digest();
  const invalid = () =>
    new PageTokenError("not a page token of this listing (the same user_id and filter), or it was modified");

  return {
    encode(listing, cursor) {
      const body = Buffer.from(JSON.stringify([cursor.time, cursor.seq]));
      return Buffer.concat([tag(listing, body), body]).toString("base64url");
    },

    decode(listing, token) {
      if (token === "") return null;
      if (!BASE64URL.test(token)) throw invalid();
      const raw = Buffer.from(token, "base64url");
      if (raw.length <= TAG_BYTES || raw.toString("base64url") !== token) throw invalid();
      const body = raw.subarray(TAG_BYTES);
      if (!timingSafeEqual(raw.subarray(0, TAG_BYTES), tag(listing, body))) throw invalid();
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch {
        throw invalid();
      }
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
