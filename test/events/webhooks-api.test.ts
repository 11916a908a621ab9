/**
 * WebhookService over the wire (docs/webhooks.md): CreateWebhook, ListWebhooks, DeleteWebhook and
 * ListWebhookDeliveries with every error of the contract: URLs that are not absolute http(s) or carry
 * credentials, unknown event types, hosts that are or resolve to loopback, private, link-local (metadata)
 * addresses or do not resolve (refused on a server without WEBHOOK_ALLOW_PRIVATE), non-admins, unknown ids,
 * page tokens of another webhook or modified, and the cap of 100.
 */
import { randomUUID } from "node:crypto";
import { type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CreateWebhookRequestSchema,
  ListWebhooksResponseSchema,
  type Webhook,
  WebhookState,
} from "../../gen/events/v1/webhook_service_pb.js";
import { EVENT_TYPES } from "../../src/events/event-log.ts";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let admin: string;

beforeAll(async () => {
  server = await startTestServer();
  admin = await adminToken(server.url);
});
afterAll(() => server?.close());

const hooks = (token = admin) => clients(server.url, "grpc", () => token).webhooks;

/** CreateWebhook by the admin; its webhook and secret. */
async function createHook(
  req: MessageInitShape<typeof CreateWebhookRequestSchema>,
): Promise<{ webhook: Webhook; secret: string }> {
  const res = await hooks().createWebhook(req);
  if (!res.webhook?.createTime) throw new Error("CreateWebhook returned no webhook");
  return { webhook: res.webhook, secret: res.secret };
}
/** A public address (TEST-NET-3, RFC 5737): never routed, so an attempt at it goes nowhere. */
const PUBLIC = "https://203.0.113.7/hook";

describe("CreateWebhook, ListWebhooks, DeleteWebhook", () => {
  it("creates an endpoint with a whsec_ secret shown once, lists it oldest first, deletes it", async () => {
    const a = await createHook({
      url: PUBLIC,
      eventTypes: ["user.created", "auth.login_failed"],
      description: "a",
    });
    const b = await createHook({ url: `${PUBLIC}?b=1`, description: "b" });
    expect(a.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a.secret.slice(6), "base64")).toHaveLength(32);
    expect(a.secret).not.toBe(b.secret);
    expect(a.webhook).toMatchObject({
      url: PUBLIC,
      eventTypes: ["user.created", "auth.login_failed"],
      description: "a",
      state: WebhookState.ACTIVE,
    });
    expect(Math.abs(timestampDate(a.webhook.createTime as Timestamp).getTime() - Date.now())).toBeLessThan(10_000);

    const listRes = await hooks().listWebhooks({});
    const listed = listRes.webhooks;
    const ids = listed.map((w) => w.id);
    expect(ids.indexOf(a.webhook.id)).toBeLessThan(ids.indexOf(b.webhook.id));
    expect(listed.find((w) => w.id === a.webhook.id)).toEqual(a.webhook);
    expect(toJsonString(ListWebhooksResponseSchema, listRes)).not.toContain("whsec_");

    await hooks().deleteWebhook({ webhookId: a.webhook.id });
    expect((await hooks().listWebhooks({})).webhooks.map((w) => w.id)).not.toContain(a.webhook.id);
    const again = await failure(hooks().deleteWebhook({ webhookId: a.webhook.id }));
    expect([again.code, again.reason]).toEqual([Code.NotFound, "WEBHOOK_NOT_FOUND"]);
    await hooks().deleteWebhook({ webhookId: b.webhook.id });
  });

  it("accepts every event type name and starts the cursor at the newest event", async () => {
    const newest = async () =>
      Number(
        (
          await query<{ seq: string }>(
            server.databaseUrl,
            "select greatest((select max(seq) from user_changes), (select max(seq) from auth_events)) as seq",
          )
        )[0].seq,
      );
    // Auth events (the admin's login) may be numbered meanwhile: the cursor is the newest seq at creation.
    const before = await newest();
    const res = await createHook({ url: PUBLIC, eventTypes: [...EVENT_TYPES] });
    const after = await newest();
    const [row] = await query<{ cursor_seq: string }>(
      server.databaseUrl,
      "select cursor_seq from webhooks where id = $1",
      [res.webhook.id],
    );
    expect(before).toBeGreaterThan(0);
    expect(Number(row.cursor_seq)).toBeGreaterThanOrEqual(before);
    expect(Number(row.cursor_seq)).toBeLessThanOrEqual(after);
    await hooks().deleteWebhook({ webhookId: res.webhook.id });
  });

  it.each([
    ["not a URL", "not a url"],
    ["relative", "/hook"],
    ["another scheme", "ftp://203.0.113.7/hook"],
    ["credentials", "https://user:pw@203.0.113.7/hook"],
    ["a user name", "https://user@203.0.113.7/hook"],
    ["localhost", "http://localhost:8080/hook"],
    ["127.0.0.1", "http://127.0.0.1/hook"],
    ["127.x", "http://127.1.2.3/hook"],
    ["loopback as one decimal number", "http://2130706433/hook"],
    ["loopback in octal and hex", "http://0177.0.0.0x1/hook"],
    ["[::1]", "http://[::1]:9000/hook"],
    ["10.x", "https://10.0.0.5/hook"],
    ["172.16/12", "https://172.20.1.1/hook"],
    ["192.168/16", "https://192.168.1.1/hook"],
    ["CGNAT", "https://100.64.0.1/hook"],
    ["the metadata service", "http://169.254.169.254/latest/meta-data"],
    ["IPv6 link-local", "http://[fe80::1]/hook"],
    ["IPv6 ULA", "http://[fd00::1]/hook"],
    ["IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/hook"],
    ["the unspecified address", "http://0.0.0.0/hook"],
    ["multicast", "http://224.0.0.1/hook"],
    ["a name that does not resolve", "https://no-such-host.invalid/hook"],
  ])("refuses %s (INVALID_ARGUMENT on url)", async (_, url) => {
    const f = await failure(hooks().createWebhook({ url }));
    expect([f.code, f.reason, f.violations]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT", ["url"]]);
  });

  it("refuses unknown event types (INVALID_ARGUMENT on event_types) and creates nothing", async () => {
    const before = (await hooks().listWebhooks({})).webhooks.length;
    const f = await failure(hooks().createWebhook({ url: PUBLIC, eventTypes: ["user.created", "user.exploded"] }));
    expect([f.code, f.reason, f.violations]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT", ["event_types"]]);
    expect(f.message).toContain("user.exploded");
    const g = await failure(hooks().createWebhook({ url: PUBLIC, eventTypes: ["AUTH_EVENT_TYPE_LOGIN_FAILED"] }));
    expect(g.violations).toEqual(["event_types"]);
    expect((await hooks().listWebhooks({})).webhooks.length).toBe(before);
  });

  it("is refused to a non-admin (PERMISSION_DENIED) and to an anonymous caller", async () => {
    const m = await createMember(server.url, admin, { prefix: "wh" });
    for (const call of [
      hooks(m.token).createWebhook({ url: PUBLIC }),
      hooks(m.token).listWebhooks({}),
      hooks(m.token).deleteWebhook({ webhookId: randomUUID() }),
      hooks(m.token).listWebhookDeliveries({ webhookId: randomUUID() }),
    ]) {
      const f = await failure(call);
      expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
    }
    const anon = await failure(clients(server.url, "grpc").webhooks.listWebhooks({}));
    expect(anon.code).toBe(Code.Unauthenticated);
  });

  it("answers WEBHOOK_NOT_FOUND for an unknown id and INVALID_ARGUMENT for one that is not a UUID", async () => {
    const f = await failure(hooks().deleteWebhook({ webhookId: randomUUID() }));
    expect([f.code, f.reason]).toEqual([Code.NotFound, "WEBHOOK_NOT_FOUND"]);
    const g = await failure(hooks().listWebhookDeliveries({ webhookId: randomUUID() }));
    expect([g.code, g.reason]).toEqual([Code.NotFound, "WEBHOOK_NOT_FOUND"]);
    const h = await failure(hooks().deleteWebhook({ webhookId: "nope" }));
    expect([h.code, h.violations]).toEqual([Code.InvalidArgument, ["webhook_id"]]);
  });
});

describe("ListWebhookDeliveries", () => {
  it("pages newest first with tokens bound to the webhook", async () => {
    // Of a type nothing here makes, so the dispatcher adds no attempts of its own to the listing.
    const a = (await createHook({ url: PUBLIC, eventTypes: ["user.undeleted"] })).webhook;
    const b = (await createHook({ url: PUBLIC, eventTypes: ["user.undeleted"] })).webhook;
    // Attempts written as the dispatcher writes them (delivery itself is tested in webhooks-delivery.test.ts).
    await query(
      server.databaseUrl,
      `insert into webhook_deliveries (webhook_id, event_id, event_type, attempt, status_code, error, time, next_attempt_time)
       select $1, 'e' || i, 'user.updated', i, case when i = 5 then 200 else 500 end,
         case when i = 5 then '' else 'the endpoint answered HTTP 500' end,
         now() - make_interval(secs => 10 - i), case when i = 5 then null else now() end
       from generate_series(1, 5) i`,
      [a.id],
    );
    const seen: string[] = [];
    let pageToken = "";
    let first = "";
    do {
      const res = await hooks().listWebhookDeliveries({ webhookId: a.id, pageSize: 2, pageToken });
      expect(res.deliveries.length).toBeLessThanOrEqual(2);
      seen.push(...res.deliveries.map((d) => d.eventId));
      first ||= res.nextPageToken;
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(["e5", "e4", "e3", "e2", "e1"]);
    const [newest] = (await hooks().listWebhookDeliveries({ webhookId: a.id, pageSize: 1 })).deliveries;
    expect(newest).toMatchObject({ eventId: "e5", eventType: "user.updated", attempt: 5, statusCode: 200, error: "" });
    expect(newest.nextAttemptTime).toBeUndefined();

    const other = await failure(hooks().listWebhookDeliveries({ webhookId: b.id, pageToken: first }));
    expect([other.code, other.reason]).toEqual([Code.InvalidArgument, "INVALID_PAGE_TOKEN"]);
    const tampered = `${first.slice(0, -2)}${first.endsWith("A") ? "B" : "A"}${first.slice(-1)}`;
    const bad = await failure(hooks().listWebhookDeliveries({ webhookId: a.id, pageToken: tampered }));
    expect(bad.reason).toBe("INVALID_PAGE_TOKEN");

    await hooks().deleteWebhook({ webhookId: a.id });
    const [{ n }] = await query<{ n: number }>(
      server.databaseUrl,
      "select count(*)::int as n from webhook_deliveries where webhook_id = $1",
      [a.id],
    );
    expect(n).toBe(0);
    await hooks().deleteWebhook({ webhookId: b.id });
  });
});

describe("the cap", () => {
  it("refuses the 101st webhook with WEBHOOK_LIMIT_REACHED", async () => {
    const existing = (await hooks().listWebhooks({})).webhooks.length;
    const made: string[] = [];
    for (let i = existing; i < 100; i++) made.push((await createHook({ url: PUBLIC })).webhook.id);
    const f = await failure(hooks().createWebhook({ url: PUBLIC }));
    expect([f.code, f.reason]).toEqual([Code.FailedPrecondition, "WEBHOOK_LIMIT_REACHED"]);
    await hooks().deleteWebhook({ webhookId: made[0] });
    const again = await hooks().createWebhook({ url: PUBLIC });
    expect(again.webhook?.id).toBeTruthy();
  });
});
