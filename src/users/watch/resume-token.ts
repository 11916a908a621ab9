/**
 * WatchUsers resume tokens: opaque to callers, they carry the change-log seq of the last change the
 * watcher has seen (or skipped because its filter did not match).
 */
import { invalidArgument } from "../../rpc/errors.ts";

const PREFIX = "c1.";

/** The token for a position in the change log. */
export function encodeResumeToken(seq: number): string {
  return Buffer.from(`${PREFIX}${seq}`).toString("base64url");
}

/** The position in a token; INVALID_ARGUMENT for anything this server did not make. */
export function decodeResumeToken(token: string): number {
  const text = /^[A-Za-z0-9_-]{1,64}$/.test(token) ? Buffer.from(token, "base64url").toString() : "";
  const seq =
    text.startsWith(PREFIX) && /^\d{1,15}$/.test(text.slice(PREFIX.length))
      ? Number(text.slice(PREFIX.length))
      : Number.NaN;
  if (!Number.isSafeInteger(seq))
    throw invalidArgument([{ field: "resume_token", description: "is not a resume token of this service" }]);
  return seq;
}
