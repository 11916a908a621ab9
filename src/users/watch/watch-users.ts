/**
 * WatchUsers. A watcher subscribes to the process's change feed first (buffering), then finds its start:
 * the resume token's seq, or the position of a consistent snapshot (send_initial: the snapshot and the log
 * position are read in one REPEATABLE READ transaction), or the current end of the log. It catches up
 * from the database, then drains the live buffer, skipping what it already saw (seq <= last), so every
 * change after the start arrives once, in commit order. Seqs are assigned after commit (docs/adr/0016): a
 * snapshot may reflect changes committed but not yet numbered, which get seqs above its position; the
 * snapshot names them, and the watcher skips them when they come. A change is sent when the user matches the filter
 * before or after it, so a user leaving the filter is seen leaving. Quiet streams get HEARTBEATs; the
 * stream ends with UNAUTHENTICATED when the caller's token expires or is revoked, with UNAVAILABLE on
 * shutdown or when the watcher falls too far behind (it resumes with its last token, losing nothing).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type pg from "pg";
import {
  WatchEventType,
  type WatchUsersResponse,
  WatchUsersResponseSchema,
} from "../../../gen/user/v1/user_service_pb.js";
import type { ChangeEvent, ChangeFeed } from "../../changes/change-feed.ts";
import { logEnd, readChangesSince, reflectedChanges } from "../../changes/change-feed.ts";
import { prunedSeq } from "../../changes/change-pruner.ts";
import { type Caller, kCaller } from "../../rpc/context.ts";
import { ServiceError } from "../../rpc/errors.ts";
import { eventIdOf, toProtoActor } from "../actor.message.ts";
import { type Filter, parseFilter } from "../list/index.ts";
import { toProtoUser } from "../user.message.ts";
import { userFromSnapshot } from "../user.snapshot.ts";
import type { UserStatus } from "../user.ts";
import type { UserStore } from "../user-store.ts";
import { turn } from "./fair-share.ts";
import { matchesFilter } from "./filter-match.ts";
import { decodeResumePoint, encodeResumeToken } from "./resume-token.ts";

/** What a watcher needs. */
export interface WatchDeps {
  feed: ChangeFeed;
  /** The change log's reads (catch-up, the pruned horizon). */
  pool: pg.Pool;
  /** The initial snapshot (send_initial). */
  users: Pick<UserStore, "snapshot">;
  /**
   * The caller's status while its token still holds (not expired, its session not revoked, its user active
   * and not re-keyed since the token was issued), else undefined; checked each time the watch wakes. Given
   * at wiring time by the auth module (the same check the auth interceptor makes on every call).
   */
  standing(caller: Caller): Promise<UserStatus | undefined>;
  heartbeatMs: number;
  /** Buffered live events beyond which a slow watcher is ended (it can resume). */
  maxBacklog?: number;
}

const eventTypes = {
  created: WatchEventType.CREATED,
  updated: WatchEventType.UPDATED,
  deleted: WatchEventType.DELETED,
  undeleted: WatchEventType.UNDELETED,
} as const;

// One message per change, shared by every watcher that sends it (1,000 watchers need not build 1,000).
const messages = new WeakMap<ChangeEvent, WatchUsersResponse>();

function eventMessage(e: ChangeEvent): WatchUsersResponse {
  let m = messages.get(e);
  if (!m) {
    m = create(WatchUsersResponseSchema, {
      type: eventTypes[e.type],
      user: toProtoUser(userFromSnapshot(e.snapshot)),
      eventTime: timestampFromDate(e.time),
      resumeToken: encodeResumeToken(e.seq),
      actor: toProtoActor(e.actor),
      eventId: eventIdOf(e.id),
    });
    messages.set(e, m);
  }
  return m;
}

function marker(type: WatchEventType, resumeToken: string): WatchUsersResponse {
  return create(WatchUsersResponseSchema, { type, eventTime: timestampFromDate(new Date()), resumeToken });
}

const matches = (filter: Filter | null, e: ChangeEvent) =>
  matchesFilter(filter, e.snapshot) || (e.previous !== null && matchesFilter(filter, e.previous));

/** Builds the handler. */
export function createWatchUsers(deps: WatchDeps) {
  const maxBacklog = deps.maxBacklog ?? 10_000;

  return async function* watchUsers(
    req: { filter: string; resumeToken: string; sendInitial: boolean },
    ctx: HandlerContext,
  ): AsyncGenerator<WatchUsersResponse> {
    const caller = ctx.values.get(kCaller);
    if (!caller) throw new ServiceError("UNAUTHENTICATED", "not authenticated");
    const filter = parseFilter(req.filter);
    const backlog: ChangeEvent[] = [];
    // Set when the backlog passed maxBacklog: nothing more is buffered (a client that stopped reading
    // must not grow the server's memory), and the watch ends at its next step; the client resumes.
    let overflow = false;
    let wake: (() => void) | undefined;
    const unsubscribe = deps.feed.subscribe((events) => {
      if (overflow || backlog.length + events.length > maxBacklog) overflow = true;
      else backlog.push(...events);
      wake?.();
    });
    const onAbort = () => wake?.();
    ctx.signal.addEventListener("abort", onAbort);
    try {
      let last: number;
      // Changes (by row id) the snapshot already reflects, though their seqs come after its position, and
      // that snapshot: tokens name it until they have all passed, so a watch resumed from one skips them too.
      let reflected = new Set<number>();
      let horizon: string | undefined;
      const tokenAt = (seq: number) => encodeResumeToken(seq, reflected.size > 0 ? horizon : undefined);
      if (req.resumeToken) {
        const point = decodeResumePoint(req.resumeToken);
        last = point.seq;
        if (last < (await prunedSeq(deps.pool))) {
          throw new ServiceError(
            "RESUME_TOKEN_EXPIRED",
            "the resume token is older than the retained change log; start a new watch",
          );
        }
        if (point.snapshot) {
          horizon = point.snapshot;
          reflected = new Set(await reflectedChanges(deps.pool, last, horizon));
        }
      } else if (req.sendInitial) {
        // The matching users and the log position they reflect, from one consistent snapshot.
        last = 0;
        for await (const page of deps.users.snapshot(filter)) {
          last = page.seq;
          reflected = new Set(page.unsequenced);
          horizon = page.snapshot;
          const resumeToken = tokenAt(page.seq);
          yield* page.users.map((u) =>
            create(WatchUsersResponseSchema, {
              type: WatchEventType.INITIAL,
              user: toProtoUser(u),
              eventTime: timestampFromDate(new Date()),
              resumeToken,
            }),
          );
        }
        yield marker(WatchEventType.SYNCED, tokenAt(last));
      } else {
        last = await logEnd(deps.pool);
      }
      let lastSent = Date.now();
      /** True for a change to send: after the start, not already in the snapshot, matching the filter. */
      const sends = (e: ChangeEvent) => {
        if (reflected.size > 0 && reflected.delete(e.id)) return false;
        return matches(filter, e);
      };
      /** The event's message; its own token while tokens must still name the snapshot. */
      const message = (e: ChangeEvent) =>
        reflected.size > 0
          ? create(WatchUsersResponseSchema, { ...eventMessage(e), resumeToken: tokenAt(e.seq) })
          : eventMessage(e);

      // Catch up from the log, then live from the buffer (already subscribed, so nothing falls in between).
      for (let first = true; ; first = false) {
        const events = await readChangesSince(deps.pool, last, 1000);
        if (first && req.resumeToken && last < (await prunedSeq(deps.pool))) {
          throw new ServiceError(
            "RESUME_TOKEN_EXPIRED",
            "the resume token is older than the retained change log; start a new watch",
          );
        }
        for (const e of events) {
          last = e.seq;
          if (sends(e)) {
            await turn();
            yield message(e);
            lastSent = Date.now();
          }
        }
        if (events.length < 1000) break;
      }

      for (;;) {
        if (ctx.signal.aborted) {
          const reason = ctx.signal.reason;
          if (reason instanceof ConnectError) throw reason;
          return;
        }
        // Not the proto's access declaration again: that was checked once, when the watch began; a watch
        // lives on, so it ends when its token is revoked or expires, or its caller is no longer an admin.
        const status = await deps.standing(caller);
        if (status?.role !== "admin") {
          throw new ServiceError(
            "UNAUTHENTICATED",
            "the access token expired or was revoked; watch again with a new token",
          );
        }
        if (overflow) {
          throw new ConnectError("the watcher fell behind; resume with the last resume_token", Code.Unavailable);
        }
        if (backlog.length > 0) {
          for (const e of backlog.splice(0, backlog.length)) {
            if (e.seq <= last) continue;
            last = e.seq;
            if (sends(e)) {
              await turn();
              yield message(e);
              lastSent = Date.now();
            }
          }
          continue;
        }
        const quiet = Date.now() - lastSent;
        if (quiet >= deps.heartbeatMs) {
          yield marker(WatchEventType.HEARTBEAT, tokenAt(Math.max(last, deps.feed.lastSeq())));
          lastSent = Date.now();
          continue;
        }
        const wait = Math.min(deps.heartbeatMs - quiet, caller.expiresAtMs - Date.now(), 1000);
        await new Promise<void>((done) => {
          const timer = setTimeout(done, Math.max(wait, 0));
          wake = () => {
            clearTimeout(timer);
            done();
          };
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      ctx.signal.removeEventListener("abort", onAbort);
    }
  };
}
