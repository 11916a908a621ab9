/**
 * A user's ways in, for an admin: the live sessions (ListUserSessions; revoke one, or all with
 * RevokeUserSessions) and the API keys (ListApiKeys, CreateApiKey with the secret shown once, DeleteApiKey).
 * Also a person's own sessions (ListSessions, RevokeSession), which any signed-in user may see. A dialog, so
 * the users table and its live view stay as they were underneath.
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ApiKey } from "../../gen/user/v1/api_key_pb.js";
import type { User } from "../../gen/user/v1/user_pb.js";
import type { Api } from "./api.ts";
import { openDialog } from "./dialog.ts";
import { h, replace } from "./dom.ts";
import { explain } from "./errors.ts";
import { field, onCreate, revealSecret } from "./form-fields.ts";
import { formatTime, formatWhen } from "./format.ts";

/** A session as both services return it (auth.v1.Session and user.v1.Session have the same fields). */
interface SessionLike {
  id: string;
  createTime?: Parameters<typeof formatTime>[0];
  lastRefreshTime?: Parameters<typeof formatTime>[0];
  expireTime?: Parameters<typeof formatTime>[0];
  clientAddress: string;
  userAgent: string;
  current: boolean;
}

/** Where the sessions come from and how one (or all) end. */
interface SessionSource {
  list(pageToken: string): Promise<{ sessions: SessionLike[]; nextPageToken: string }>;
  revoke(id: string): Promise<unknown>;
  revokeAll?(): Promise<number>;
}

const when = (ts: SessionLike["createTime"]) => h("span", { title: formatTime(ts) }, formatWhen(ts));

/** The sessions section: a table with a Revoke button per row, paged, and optionally "Revoke all". */
function sessionsSection(source: SessionSource, apiBaseUrl: string): HTMLElement {
  const notice = h("div", { class: "notice", role: "status" });
  const tbody = h("tbody");
  const more = h("button", { type: "button", onclick: () => void load(false) }, "More");
  let next = "";
  const say = (text: string, kind: "info" | "error" = "info") => {
    notice.className = `notice ${kind}`;
    notice.textContent = text;
  };

  function rowOf(s: SessionLike): HTMLTableRowElement {
    const revoke = h("button", { type: "button", class: "danger" }, "Revoke");
    const tr = h(
      "tr",
      { "data-session-id": s.id },
      h("td", {}, when(s.createTime), s.current ? h("span", { class: "badge active" }, " this session") : null),
      h("td", {}, when(s.lastRefreshTime)),
      h("td", {}, when(s.expireTime)),
      h("td", { "data-col": "client_address" }, s.clientAddress),
      h("td", { "data-col": "user_agent", class: "muted ellipsis", title: s.userAgent }, s.userAgent),
      h("td", { class: "row-actions" }, revoke),
    );
    revoke.addEventListener("click", async () => {
      revoke.disabled = true;
      try {
        await source.revoke(s.id);
        tr.remove();
        say("Session revoked: its tokens stop working within a second.");
      } catch (err) {
        revoke.disabled = false;
        say(explain(err, apiBaseUrl).message, "error");
      }
    });
    return tr;
  }

  async function load(first: boolean) {
    try {
      const res = await source.list(first ? "" : next);
      if (first) replace(tbody);
      tbody.append(...res.sessions.map(rowOf));
      if (first && res.sessions.length === 0)
        tbody.append(h("tr", {}, h("td", { colspan: 6, class: "muted empty" }, "No live sessions.")));
      next = res.nextPageToken;
      more.hidden = next === "";
    } catch (err) {
      say(explain(err, apiBaseUrl).message, "error");
    }
  }

  const revokeAll = source.revokeAll
    ? h(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: async () => {
            try {
              const n = await source.revokeAll?.();
              say(`${n} ${n === 1 ? "session" : "sessions"} revoked.`);
              await load(true);
            } catch (err) {
              say(explain(err, apiBaseUrl).message, "error");
            }
          },
        },
        "Revoke all",
      )
    : null;
  void load(true);
  return h(
    "section",
    { class: "sessions", "aria-label": "Sessions" },
    h("div", { class: "heading" }, h("h3", {}, "Sessions"), revokeAll),
    notice,
    h(
      "table",
      { class: "users-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Signed in", "Last refresh", "Expires", "Address", "User agent", ""].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      tbody,
    ),
    h("div", { class: "pager" }, more),
  );
}

/** The API keys section: the keys, Delete per key, and a form that creates one and shows its secret once. */
function apiKeysSection(api: () => Api, user: User, apiBaseUrl: string): HTMLElement {
  const notice = h("div", { class: "notice", role: "status" });
  const secretBox = h("div", { class: "secret", hidden: true });
  const tbody = h("tbody");
  const say = (text: string, kind: "info" | "error" = "info") => {
    notice.className = `notice ${kind}`;
    notice.textContent = text;
  };

  function rowOf(k: ApiKey): HTMLTableRowElement {
    const del = h("button", { type: "button", class: "danger" }, "Delete");
    const tr = h(
      "tr",
      { "data-api-key-id": k.id, "data-key-name": k.displayName },
      h("td", { "data-col": "display_name" }, k.displayName),
      h("td", { "data-col": "prefix" }, h("code", {}, `${k.prefix}…`)),
      h("td", {}, when(k.createTime)),
      h("td", {}, k.expireTime ? when(k.expireTime) : "never"),
      h("td", { "data-col": "last_used" }, k.lastUsedTime ? when(k.lastUsedTime) : "never"),
      h("td", { class: "row-actions" }, del),
    );
    del.addEventListener("click", async () => {
      del.disabled = true;
      try {
        await api().users.deleteApiKey({ userId: user.id, apiKeyId: k.id });
        tr.remove();
        say(`Key "${k.displayName}" deleted: it stops working within a second.`);
      } catch (err) {
        del.disabled = false;
        say(explain(err, apiBaseUrl).message, "error");
      }
    });
    return tr;
  }

  async function load() {
    try {
      const res = await api().users.listApiKeys({ userId: user.id });
      replace(tbody, ...res.apiKeys.map(rowOf));
      if (res.apiKeys.length === 0)
        tbody.append(h("tr", {}, h("td", { colspan: 6, class: "muted empty" }, "No API keys.")));
    } catch (err) {
      say(explain(err, apiBaseUrl).message, "error");
    }
  }

  const name = h("input", { type: "text", autocomplete: "off", placeholder: "billing-backend" });
  const expires = h("input", { type: "date" });
  const create = h("button", { type: "submit", class: "primary" }, "Create key");
  const form = h(
    "form",
    { class: "inline-form", novalidate: true },
    field("Key name", "display_name", name),
    field("Expires (optional)", "expire_time", expires),
    create,
  );
  onCreate({ form, submit: create, apiBaseUrl, say }, async () => {
    const at = expires.value ? new Date(`${expires.value}T00:00:00`) : undefined;
    const res = await api().users.createApiKey({
      userId: user.id,
      displayName: name.value.trim(),
      expireTime: at ? timestampFromDate(at) : undefined,
    });
    name.value = "";
    expires.value = "";
    revealSecret(secretBox, "secret", "api-key-secret", res.secret);
    say(`Key "${res.apiKey?.displayName}" created.`);
    await load();
  });
  void load();
  return h(
    "section",
    { class: "api-keys", "aria-label": "API keys" },
    h("h3", {}, "API keys"),
    notice,
    secretBox,
    h(
      "table",
      { class: "users-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Name", "Prefix", "Created", "Expires", "Last used", ""].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      tbody,
    ),
    form,
  );
}

/** Opens an admin's view of a user's sessions and API keys. */
export function openCredentials(opts: { api: () => Api; apiBaseUrl: string; user: User }): void {
  const { api, user } = opts;
  const sessions: SessionSource = {
    list: (pageToken) => api().users.listUserSessions({ userId: user.id, pageToken, pageSize: 20 }),
    revoke: (sessionId) => api().users.revokeUserSessions({ userId: user.id, sessionId }),
    revokeAll: async () => (await api().users.revokeUserSessions({ userId: user.id })).revokedCount,
  };
  openDialog(
    `Access of ${user.email}`,
    sessionsSection(sessions, opts.apiBaseUrl),
    apiKeysSection(api, user, opts.apiBaseUrl),
  );
}

/** Opens the signed-in person's own sessions. */
export function openMySessions(opts: { api: () => Api; apiBaseUrl: string }): void {
  const { api } = opts;
  const sessions: SessionSource = {
    list: (pageToken) => api().auth.listSessions({ pageToken, pageSize: 20 }),
    revoke: (sessionId) => api().auth.revokeSession({ sessionId }),
  };
  openDialog("My sessions", sessionsSection(sessions, opts.apiBaseUrl));
}
