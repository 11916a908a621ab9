/**
 * The users page: ListUsers with filter, order, paging by page tokens and the total; row actions; and the
 * live feed patching rows in place. The feed watches with the list's filter, so the service only sends
 * changes to users this list can show.
 */
import { type User, UserState } from "../../gen/user/v1/user_pb.js";
import { WatchEventType, type WatchUsersResponse } from "../../gen/user/v1/user_service_pb.js";
import type { Api } from "./api.ts";
import { openCredentials } from "./credentials-view.ts";
import { h, replace } from "./dom.ts";
import { explain } from "./errors.ts";
import { createRecentUsers, isNewer } from "./freshness.ts";
import { openHistory } from "./history-view.ts";
import { type LiveFeed, startLive } from "./live.ts";
import { createLiveLog } from "./live-log.ts";
import { runAction } from "./user-actions.ts";
import { openUserForm } from "./user-form.ts";
import { tableHead, type UserAction, userRow } from "./users-table.ts";
import { type ListQuery, usersToolbar } from "./users-toolbar.ts";

/** What the page needs. */
export interface UsersViewOptions {
  api: () => Api;
  apiBaseUrl: string;
  accessToken(): string | undefined;
  refresh(): Promise<boolean>;
}

/** A mounted view. */
export interface View {
  readonly element: HTMLElement;
  destroy(): void;
}

/** Builds the page and starts loading. */
export function usersView(opts: UsersViewOptions): View {
  let query: ListQuery = { filter: "", orderBy: "create_time desc", pageSize: 10, showDeleted: false };
  let pageTokens = [""];
  let users: User[] = [];
  let total = 0;
  let nextPageToken = "";
  let loads = 0;
  let live: LiveFeed | undefined;
  const flashing = new Set<string>();
  const recent = createRecentUsers();
  const liveLog = createLiveLog();

  const notice = h("div", { class: "notice", role: "status" });
  const tbody = h("tbody");
  const totalText = h("span", { class: "total", "data-testid": "total" });
  const pageText = h("span", { class: "muted" });
  const prev = h("button", { type: "button", onclick: () => go(-1) }, "← Previous");
  const next = h("button", { type: "button", onclick: () => go(1) }, "Next →");
  const toolbar = usersToolbar(query, (q, applied) => {
    query = q;
    if (applied) startFeed();
    restart();
  });

  const say = (text: string, kind: "info" | "error" = "info") => {
    notice.className = `notice ${kind}`;
    notice.textContent = text;
  };

  function render() {
    replace(tbody, ...users.map((u) => userRow(u, flashing.has(u.id), act)));
    if (users.length === 0) tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted empty" }, "No users match.")));
    const first = (pageTokens.length - 1) * query.pageSize;
    totalText.textContent = `${total} ${total === 1 ? "user" : "users"}`;
    pageText.textContent = users.length > 0 ? `Page ${pageTokens.length} · ${first + 1}–${first + users.length}` : "";
    prev.disabled = pageTokens.length === 1;
    next.disabled = nextPageToken === "";
  }

  async function load() {
    const seq = ++loads;
    try {
      const res = await opts.api().users.listUsers({ ...query, pageToken: pageTokens[pageTokens.length - 1] });
      if (seq !== loads) return;
      // A change seen live after this page was read must not be undone by it.
      users = res.users
        .map((u) => recent.freshest(u))
        .filter((u) => query.showDeleted || u.state !== UserState.DELETED);
      total = res.totalSize;
      nextPageToken = res.nextPageToken;
      toolbar.showFilterError("");
      render();
    } catch (err) {
      if (seq !== loads) return;
      const why = explain(err, opts.apiBaseUrl);
      if (why.reason === "INVALID_FILTER") {
        toolbar.showFilterError(why.message);
      } else if (why.reason === "INVALID_PAGE_TOKEN" && pageTokens.length > 1) {
        say(why.message);
        restart();
      } else {
        say(why.message, "error");
      }
    }
  }

  function go(step: number) {
    if (step > 0 && nextPageToken) pageTokens.push(nextPageToken);
    if (step < 0 && pageTokens.length > 1) pageTokens.pop();
    void load();
  }

  function restart() {
    pageTokens = [""];
    void load();
  }

  function flash(id: string) {
    flashing.add(id);
    setTimeout(() => flashing.delete(id), 1500);
  }

  /** Puts a user the service returned (or a live event carried) into the rows; the newest copy wins. */
  function upsert(user: User, insertIfMissing: boolean) {
    recent.remember(user);
    const i = users.findIndex((u) => u.id === user.id);
    const hidden = user.state === UserState.DELETED && !query.showDeleted;
    if (i >= 0 && !isNewer(user, users[i])) return;
    if (i >= 0 && hidden) {
      users.splice(i, 1);
      total = Math.max(0, total - 1);
    } else if (i >= 0) {
      users[i] = user;
    } else if (insertIfMissing && !hidden && pageTokens.length === 1) {
      // New users go on top of the first page: where a person watching the list looks for them.
      users.unshift(user);
      total++;
    } else {
      return;
    }
    flash(user.id);
    render();
  }

  function onEvent(event: WatchUsersResponse) {
    liveLog.add(event);
    if (!event.user) return;
    upsert(event.user, event.type === WatchEventType.CREATED || event.type === WatchEventType.UNDELETED);
  }

  function startFeed() {
    live?.stop();
    live = startLive({
      users: () => opts.api().users,
      filter: query.filter,
      onEvent,
      onStatus: (s, detail) => liveLog.setStatus(s, detail),
      onResync: () => void load(),
      accessToken: opts.accessToken,
      refresh: opts.refresh,
    });
  }

  async function act(action: UserAction, user: User) {
    if (action === "history") {
      openHistory({ api: opts.api, apiBaseUrl: opts.apiBaseUrl, user });
      return;
    }
    if (action === "access") {
      openCredentials({ api: opts.api, apiBaseUrl: opts.apiBaseUrl, user });
      return;
    }
    if (action === "edit") {
      openUserForm({ api: opts.api, apiBaseUrl: opts.apiBaseUrl, user, onSaved: (u) => upsert(u, false) });
      return;
    }
    const result = await runAction(opts.api(), action, user, opts.apiBaseUrl);
    if (result.user) upsert(result.user, false);
    say(result.message, result.failed ? "error" : "info");
  }

  function created(user: User) {
    say(`Created ${user.email}.`);
    recent.remember(user);
    flash(user.id);
    restart();
  }

  const newUser = () => openUserForm({ api: opts.api, apiBaseUrl: opts.apiBaseUrl, onSaved: created });
  const element = h(
    "main",
    { class: "page" },
    h(
      "section",
      { class: "card users" },
      h(
        "div",
        { class: "heading" },
        h("h1", {}, "Users"),
        h("button", { type: "button", class: "primary", onclick: newUser }, "New user"),
      ),
      toolbar.element,
      notice,
      h("table", { class: "users-table" }, tableHead(), tbody),
      h("div", { class: "pager" }, totalText, h("span", { class: "spacer" }), pageText, prev, next),
    ),
    liveLog.element,
  );
  render();
  void load();
  startFeed();
  return { element, destroy: () => live?.stop() };
}
