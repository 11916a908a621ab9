/** The live panel: whether the feed is connected, and the latest changes it delivered, newest first. */
import { WatchEventType, type WatchUsersResponse } from "../../gen/user/v1/user_service_pb.js";
import { h, replace } from "./dom.ts";
import { formatClock } from "./format.ts";
import type { LiveStatus } from "./live.ts";

const verbs: ReadonlyMap<WatchEventType, string> = new Map([
  [WatchEventType.CREATED, "created"],
  [WatchEventType.UPDATED, "updated"],
  [WatchEventType.DELETED, "deleted"],
  [WatchEventType.UNDELETED, "undeleted"],
]);

const statusText: Record<LiveStatus, string> = { live: "Live", reconnecting: "Reconnecting…", stopped: "Off" };

// Enough to see what just happened; the table is the record.
const KEEP = 25;

/** The panel and the two things that change it. */
export interface LiveLog {
  readonly element: HTMLElement;
  add(event: WatchUsersResponse): void;
  setStatus(status: LiveStatus, detail?: string): void;
}

/** Builds the panel. */
export function createLiveLog(): LiveLog {
  const status = h("span", { class: "live-status", "data-status": "reconnecting", role: "status" }, "Connecting…");
  const list = h("ol", { class: "live-log", "aria-label": "Live changes" });
  const empty = h("p", { class: "muted" }, "Changes made anywhere appear here as they happen.");
  return {
    element: h("aside", { class: "card live" }, h("h2", {}, "Live ", status), empty, list),
    add(event) {
      const verb = verbs.get(event.type);
      if (!verb || !event.user) return;
      empty.remove();
      list.prepend(
        h(
          "li",
          { "data-event": verb },
          h("time", {}, formatClock(event.eventTime)),
          " ",
          h("span", { class: `verb ${verb}` }, verb),
          " ",
          h("span", { class: "email" }, event.user.email),
        ),
      );
      while (list.children.length > KEEP) list.lastElementChild?.remove();
    },
    setStatus(next, detail) {
      status.dataset.status = next;
      replace(status, detail ? `${statusText[next]}: ${detail}` : statusText[next]);
    },
  };
}
