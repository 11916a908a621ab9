/**
 * WatchUsers resume tokens: opaque to callers, they carry the change-log seq of the last change the
 * watcher has seen (or skipped because its filter did not match). Right after a snapshot that saw changes
 * committed but not yet numbered, until the watcher has passed them, a token also names that snapshot
 * (PostgreSQL's `pg_snapshot` text, `xmin:xmax:xip,...`), so a watch resumed from it skips them again
 * (docs/adr/0016-sequencer.md).
 */
import { invalidArgument } from "../../rpc/errors.ts";

const PREFIX = "c1.";
/**
 * A snapshot lists the transactions running when it was taken (at most max_connections of them, ~20 bytes
 * each once encoded): the tokens this server makes stay under this.
 */
const MAX_TOKEN = 32_768;

/** A position in the change log. */
export interface ResumePoint {
  seq: number;
  /** The snapshot whose unnumbered changes are still to be skipped, if any. */
  snapshot?: string;
}

/** The token for a position in the change log (and the snapshot to skip the changes of, if any). */
export function encodeResumeToken(seq: number, snapshot?: string): string {
  return Buffer.from(`${PREFIX}${seq}${snapshot ? `.${snapshot}` : ""}`).toString("base64url");
}

const MAX_XID = 2n ** 63n - 1n;
/** A full transaction id (xid8), or -1 when the text is not one. */
function xid(s: string): bigint {
  const x = /^\d{1,19}$/.test(s) ? BigInt(s) : -1n;
  return x <= MAX_XID ? x : -1n;
}

/** True for `xmin:xmax:xip,...` as PostgreSQL accepts it: xmin <= xip (ascending) < xmax. */
function isSnapshot(text: string): boolean {
  const parts = text.split(":");
  if (parts.length !== 3) return false;
  const [xmin, xmax] = [xid(parts[0]), xid(parts[1])];
  if (xmin < 1n || xmax < xmin) return false;
  if (parts[2] === "") return true;
  let prev = xmin;
  for (const p of parts[2].split(",")) {
    const x = xid(p);
    if (x < prev || x >= xmax) return false;
    prev = x;
  }
  return true;
}

const invalid = () =>
  invalidArgument([{ field: "resume_token", description: "is not a resume token of this service" }]);

/** The position in a token; INVALID_ARGUMENT for anything this server did not make. */
export function decodeResumePoint(token: string): ResumePoint {
  if (token.length > MAX_TOKEN || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalid();
  const text = Buffer.from(token, "base64url").toString();
  const match = /^c1\.(\d{1,15})(?:\.(.+))?$/.exec(text);
  const seq = match ? Number(match[1]) : Number.NaN;
  if (!match || !Number.isSafeInteger(seq) || (match[2] !== undefined && !isSnapshot(match[2]))) throw invalid();
  return match[2] === undefined ? { seq } : { seq, snapshot: match[2] };
}

/** The seq in a token; INVALID_ARGUMENT for anything this server did not make. */
export function decodeResumeToken(token: string): number {
  return decodeResumePoint(token).seq;
}
