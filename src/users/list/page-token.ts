/**
 * Page tokens: base64url of an HMAC-SHA256 tag followed by a small JSON body holding the last row's
 * position, the total_size the walk's first page reported, and a hash of the request it belongs to. The tag
 * makes tokens tamper-evident (callers cannot forge a position or a total); the hash binds a token to its
 * filter, order_by and show_deleted, so a token replayed with other arguments fails instead of silently
 * paging a different result set. Carrying the total lets every page after the first skip the count
 * (docs/adr/0018): their total_size is the first page's.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { PageTokenError } from "./errors.ts";
import type { Filter } from "./filter.ast.ts";
import type { Cursor } from "./keyset.ts";
import { formatOrderBy, type OrderBy } from "./order-by.ts";

/** The request arguments a token is bound to, as parsed (so spelling differences do not matter). */
export interface PageRequest {
  readonly filter: Filter | null;
  readonly orderBy: OrderBy;
  readonly showDeleted: boolean;
}

/** Where a later page starts, and the total_size of the walk's first page. */
export interface PagePosition {
  readonly cursor: Cursor;
  /** Null in a token made before totals were carried (a server of an earlier release): count again. */
  readonly total: number | null;
}

/** Makes and checks page tokens with one secret key. */
export interface PageTokenCodec {
  /** The token for the page that starts after `cursor`, carrying the walk's `total`. */
  encode(request: PageRequest, position: { cursor: Cursor; total: number }): string;
  /** The position in `token` (null for an empty token: the first page), or PageTokenError. */
  decode(request: PageRequest, token: string): PagePosition | null;
}

const TAG_BYTES = 32;
/** Domain separation: a tag made here means nothing to any other use of the same key. */
const CONTEXT = "user.v1.ListUsers page token v1\n";
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Hash of the normalized request: the checked filter tree, the canonical order and show_deleted. */
function binding(request: PageRequest): string {
  const normalized = JSON.stringify([request.filter, formatOrderBy(request.orderBy), request.showDeleted]);
  return createHash("sha256").update(normalized).digest().subarray(0, 16).toString("base64url");
}

/** total_size is an int32 on the wire. */
const MAX_TOTAL = 2 ** 31 - 1;

/** `[binding, keys, id, total]`, or `[binding, keys, id]` as tokens were before they carried the total. */
function isPositionBody(body: unknown[], keyCount: number): body is [string, string[], string, number?] {
  const [, keys, id, total] = body;
  return (
    (body.length === 3 ||
      (body.length === 4 && Number.isSafeInteger(total) && (total as number) >= 0 && (total as number) <= MAX_TOTAL)) &&
    Array.isArray(keys) &&
    keys.length === keyCount &&
    keys.every((k) => typeof k === "string") &&
    typeof id === "string"
  );
}

/** A codec keyed by `key` (at least 32 bytes; derive it from a server secret, keep it across restarts). */
export function createPageTokenCodec(key: string | Uint8Array): PageTokenCodec {
  if (Buffer.byteLength(key) < 32) throw new RangeError("page token key must be at least 32 bytes");
  const tag = (body: Buffer) => createHmac("sha256", key).update(CONTEXT).update(body).digest();
  const invalid = () => new PageTokenError("not a page token from this server, or it was modified");

  return {
    encode(request, { cursor, total }) {
      const body = Buffer.from(JSON.stringify([binding(request), cursor.keys, cursor.id, Math.min(total, MAX_TOTAL)]));
      return Buffer.concat([tag(body), body]).toString("base64url");
    },

    decode(request, token) {
      if (token === "") return null;
      if (!BASE64URL.test(token)) throw invalid();
      const raw = Buffer.from(token, "base64url");
      // Node's decoder skips stray characters; only the canonical spelling of the bytes is accepted.
      if (raw.length <= TAG_BYTES || raw.toString("base64url") !== token) throw invalid();
      const body = raw.subarray(TAG_BYTES);
      if (!timingSafeEqual(raw.subarray(0, TAG_BYTES), tag(body))) throw invalid();
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch {
        throw invalid();
      }
      if (!Array.isArray(parsed) || parsed[0] !== binding(request)) {
        throw new PageTokenError("it was made for a different filter, order_by or show_deleted");
      }
      if (!isPositionBody(parsed, request.orderBy.length)) throw invalid();
      const [, keys, id, total] = parsed;
      return { cursor: { keys, id }, total: total ?? null };
    },
  };
}
