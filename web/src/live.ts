/**
 * The live feed: WatchUsers kept open for as long as the console shows the list. After a network blip it
 * reconnects with the last resume_token it saw, so nothing that happened meanwhile is lost. Until the first
 * event or heartbeat there is no token; a watch (re)started without one asks for a resync (reloading the
 * list) once the service has had a moment to start watching, which closes that gap instead.
 */
import type { Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import type { UserService, WatchUsersResponse } from "../../gen/user/v1/user_service_pb.js";
import { reasonOf } from "./errors.ts";

/** What the live indicator shows. */
export type LiveStatus = "live" | "reconnecting" | "stopped";

/** What the feed needs. */
export interface LiveOptions {
  /** Read at every (re)connect, so a transport switch or a renewed token is picked up. */
  users: () => Client<typeof UserService>;
  filter: string;
  onEvent(event: WatchUsersResponse): void;
  onStatus(status: LiveStatus, detail?: string): void;
  /** Reload whatever the events patch: the feed (re)started without a token, or the token expired. */
  onResync(): void;
  /** The access token calls carry now. */
  accessToken(): string | undefined;
  /** Renews the access token; false when the session is over. */
  refresh(): Promise<boolean>;
  /** How long after a token-less start the resync runs (ms). */
  resyncDelayMs?: number;
}

/** A running feed. */
export interface LiveFeed {
  stop(): void;
  /** The last resume token seen (empty before the first event). */
  readonly resumeToken: string;
}

const backoffMs = (attempt: number) => Math.min(5000, 250 * 2 ** attempt) * (0.75 + Math.random() * 0.5);

/** Starts watching. */
export function startLive(opts: LiveOptions): LiveFeed {
  const abort = new AbortController();
  let token = "";
  const sleep = (ms: number) =>
    new Promise<void>((done) => {
      const t = setTimeout(done, ms);
      abort.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(t);
          done();
        },
        { once: true },
      );
    });

  async function run() {
    for (let attempt = 0; !abort.signal.aborted; ) {
      let resync: ReturnType<typeof setTimeout> | undefined;
      if (token === "") resync = setTimeout(opts.onResync, opts.resyncDelayMs ?? 300);
      const used = opts.accessToken();
      try {
        const stream = opts
          .users()
          .watchUsers({ filter: opts.filter, resumeToken: token, sendInitial: false }, { signal: abort.signal });
        opts.onStatus("live");
        for await (const event of stream) {
          attempt = 0;
          if (event.resumeToken) token = event.resumeToken;
          opts.onEvent(event);
        }
        // The service ended the stream cleanly (it may, e.g. when a replica sheds load): reconnect.
      } catch (err) {
        clearTimeout(resync);
        if (abort.signal.aborted) return;
        const reason = reasonOf(err);
        // Usually the session renewed the token already and the stream still carried the old one.
        const renewed = reason !== "UNAUTHENTICATED" || opts.accessToken() !== used || (await opts.refresh());
        if (!renewed) return stop("signed out");
        if (reason === "PERMISSION_DENIED" || reason === "INVALID_FILTER")
          return stop(ConnectError.from(err).rawMessage);
        if (reason === "RESUME_TOKEN_EXPIRED") token = "";
      }
      opts.onStatus("reconnecting");
      // The token ending the stream is routine (it expires on schedule): resume at once the first time.
      await sleep(attempt === 0 ? 0 : backoffMs(attempt));
      attempt++;
    }
  }

  function stop(detail?: string) {
    abort.abort();
    opts.onStatus("stopped", detail);
  }

  void run();
  return {
    stop: () => stop(),
    get resumeToken() {
      return token;
    },
  };
}
