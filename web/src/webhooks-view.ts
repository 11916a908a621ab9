/**
 * The webhooks, for an admin (events.v1.WebhookService): the endpoints with their state, a form that
 * creates one and shows its signing secret once, Delete, and each endpoint's recent delivery attempts
 * (ListWebhookDeliveries: status, error, attempt, next retry). A dialog over the users table.
 */
import { type Webhook, type WebhookDelivery, WebhookState } from "../../gen/events/v1/webhook_service_pb.js";
import type { Api } from "./api.ts";
import { openDialog } from "./dialog.ts";
import { h, replace } from "./dom.ts";
import { explain } from "./errors.ts";
import { field, onCreate, revealSecret } from "./form-fields.ts";
import { formatTime, formatWhen } from "./format.ts";

type Time = Parameters<typeof formatTime>[0];
const when = (ts: Time) => h("span", { title: formatTime(ts) }, formatWhen(ts));

const stateLabels: ReadonlyMap<WebhookState, string> = new Map([
  [WebhookState.ACTIVE, "active"],
  [WebhookState.DISABLED, "disabled"],
]);

/** One endpoint's delivery attempts, newest first, paged. */
function deliveriesSection(api: () => Api, webhook: Webhook, apiBaseUrl: string): HTMLElement {
  const notice = h("div", { class: "notice", role: "status" });
  const tbody = h("tbody");
  const more = h("button", { type: "button", onclick: () => void load(false) }, "More");
  let next = "";

  function rowOf(d: WebhookDelivery): HTMLTableRowElement {
    const ok = d.error === "" && d.statusCode >= 200 && d.statusCode < 300;
    return h(
      "tr",
      { "data-event-id": d.eventId, "data-attempt": String(d.attempt) },
      h("td", { class: "nowrap" }, when(d.time)),
      h("td", { "data-col": "event_type" }, d.eventType),
      h("td", { "data-col": "event_id", class: "muted ellipsis", title: d.eventId }, d.eventId),
      h("td", { "data-col": "attempt" }, String(d.attempt)),
      h(
        "td",
        { "data-col": "status" },
        h(
          "span",
          { class: `badge ${ok ? "active" : "suspended"}` },
          d.statusCode === 0 ? "no answer" : String(d.statusCode),
        ),
      ),
      h("td", { "data-col": "error", class: "ellipsis", title: d.error }, d.error),
      h("td", { "data-col": "next_attempt" }, d.nextAttemptTime ? when(d.nextAttemptTime) : ""),
    );
  }

  async function load(first: boolean) {
    try {
      const res = await api().webhooks.listWebhookDeliveries({
        webhookId: webhook.id,
        pageSize: 20,
        pageToken: first ? "" : next,
      });
      if (first) replace(tbody);
      tbody.append(...res.deliveries.map(rowOf));
      if (first && res.deliveries.length === 0)
        tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted empty" }, "No deliveries yet.")));
      next = res.nextPageToken;
      more.hidden = next === "";
    } catch (err) {
      notice.className = "notice error";
      notice.textContent = explain(err, apiBaseUrl).message;
    }
  }

  void load(true);
  return h(
    "section",
    { class: "deliveries", "aria-label": `Deliveries to ${webhook.url}` },
    h(
      "div",
      { class: "heading" },
      h("h3", {}, "Deliveries to ", h("code", {}, webhook.url)),
      h("button", { type: "button", onclick: () => void load(true) }, "Refresh"),
    ),
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
          ...["When", "Event", "Event id", "Attempt", "Status", "Error", "Next attempt"].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      tbody,
    ),
    h("div", { class: "pager" }, more),
  );
}

/** Opens the webhooks dialog. */
export function openWebhooks(opts: { api: () => Api; apiBaseUrl: string }): void {
  const { api, apiBaseUrl } = opts;
  const notice = h("div", { class: "notice", role: "status" });
  const secretBox = h("div", { class: "secret", hidden: true });
  const tbody = h("tbody");
  const deliveries = h("div");
  const say = (text: string, kind: "info" | "error" = "info") => {
    notice.className = `notice ${kind}`;
    notice.textContent = text;
  };

  function rowOf(w: Webhook): HTMLTableRowElement {
    const del = h("button", { type: "button", class: "danger" }, "Delete");
    const show = h(
      "button",
      { type: "button", onclick: () => replace(deliveries, deliveriesSection(api, w, apiBaseUrl)) },
      "Deliveries",
    );
    const state = stateLabels.get(w.state) ?? "";
    const tr = h(
      "tr",
      { "data-webhook-id": w.id, "data-url": w.url },
      h("td", { "data-col": "url", class: "ellipsis", title: w.url }, w.url),
      h("td", { "data-col": "event_types" }, w.eventTypes.length === 0 ? "every event" : w.eventTypes.join(", ")),
      h(
        "td",
        { "data-col": "state" },
        h("span", { class: `badge ${state === "active" ? "active" : "suspended"}` }, state),
      ),
      h("td", { "data-col": "description", class: "muted ellipsis", title: w.description }, w.description),
      h("td", {}, when(w.createTime)),
      h("td", { class: "row-actions" }, show, del),
    );
    del.addEventListener("click", async () => {
      del.disabled = true;
      try {
        await api().webhooks.deleteWebhook({ webhookId: w.id });
        tr.remove();
        replace(deliveries);
        say(`Webhook ${w.url} deleted: nothing more is sent to it.`);
      } catch (err) {
        del.disabled = false;
        say(explain(err, apiBaseUrl).message, "error");
      }
    });
    return tr;
  }

  async function load() {
    try {
      const res = await api().webhooks.listWebhooks({});
      replace(tbody, ...res.webhooks.map(rowOf));
      if (res.webhooks.length === 0)
        tbody.append(h("tr", {}, h("td", { colspan: 6, class: "muted empty" }, "No webhooks.")));
    } catch (err) {
      say(explain(err, apiBaseUrl).message, "error");
    }
  }

  const url = h("input", { type: "url", autocomplete: "off", placeholder: "https://example.com/hooks/users" });
  const types = h("input", { type: "text", autocomplete: "off", placeholder: "user.created, auth.login_failed" });
  const description = h("input", { type: "text", autocomplete: "off" });
  const create = h("button", { type: "submit", class: "primary" }, "Create webhook");
  const form = h(
    "form",
    { class: "inline-form", novalidate: true },
    field("URL", "url", url),
    field("Event types (empty: every event)", "event_types", types),
    field("Description", "description", description),
    create,
  );
  onCreate({ form, submit: create, apiBaseUrl, say }, async () => {
    const res = await api().webhooks.createWebhook({
      url: url.value.trim(),
      eventTypes: types.value
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t !== ""),
      description: description.value.trim(),
    });
    url.value = "";
    types.value = "";
    description.value = "";
    revealSecret(secretBox, "signing secret", "webhook-secret", res.secret);
    say(`Webhook ${res.webhook?.url} created: events from now on are sent to it.`);
    await load();
  });
  void load();
  openDialog(
    "Webhooks",
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
          ...["URL", "Events", "State", "Description", "Created", ""].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      tbody,
    ),
    form,
    deliveries,
  );
}
