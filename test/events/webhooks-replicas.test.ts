/**
 * Webhook delivery with more than one replica on one database (docs/webhooks.md, "Design"): every event
 * reaches each endpoint exactly once and in order while two replicas deliver (the lease makes one replica at
 * a time deliver to an endpoint); a replica shut down mid-attempt gives its endpoint back and another sends
 * the same event (same webhook-id); one replica delivers to at most WEBHOOK_CONCURRENCY endpoints at once;
 * and the SSRF guard at delivery time: an endpoint on 127.0.0.1, created by a replica with
 * WEBHOOK_ALLOW_PRIVATE=true, is never called by one without it.
 */
import { afterAll, describe, expect, it } from "vitest";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { type Received, startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";

const servers: TestServer[] = [];
const receivers: WebhookReceiver[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(receivers.map((r) => r.close()));
});

async function server(env: Record<string, string>): Promise<TestServer> {
  const s = await startTestServer(env);
  servers.push(s);
  return s;
}

async function receiver(): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver();
  receivers.push(r);
  return r;
}

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end) throw new Error(`timed out; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const aboutUser = (userId: string) => (r: Received) => r.body.includes(userId);
const leasesHeld = async (databaseUrl: string) =>
  (await query<{ n: number }>(databaseUrl, "select count(*)::int as n from webhooks where lease_owner is not null"))[0]
    .n;

describe("two replicas", () => {
  it("deliver every event to every endpoint exactly once, in order", async () => {
    const a = await server({ WEBHOOK_ALLOW_PRIVATE: "true" });
    const b = await server({ WEBHOOK_ALLOW_PRIVATE: "true", DATABASE_URL: a.databaseUrl });
    const admin = await adminToken(a.url);
    const endpoints = await Promise.all(
      [1, 2, 3].map(async () => {
        const r = await receiver();
        const res = await clients(a.url, "grpc", () => admin).webhooks.createWebhook({
          url: r.url,
          eventTypes: ["user.updated"],
        });
        return { receiver: r, id: res.webhook?.id ?? "" };
      }),
    );
    const m = await createMember(a.url, admin, { prefix: "wh-replicas" });
    // Writes on both replicas, so both are woken by their own writes and by each other's NOTIFY.
    const names = Array.from({ length: 30 }, (_, i) => `name ${i}`);
    for (const [i, displayName] of names.entries())
      await clients(i % 2 === 0 ? a.url : b.url, "grpc", () => admin).users.updateUser({
        user: { id: m.user.id, displayName },
        updateMask: { paths: ["display_name"] },
      });
    for (const e of endpoints) await e.receiver.waitFor(names.length, aboutUser(m.user.id));
    await until(
      () => leasesHeld(a.databaseUrl),
      (n) => n === 0,
    );
    for (const e of endpoints) {
      const got = e.receiver.received.filter(aboutUser(m.user.id));
      expect(got.map((r) => JSON.parse(r.body).data.user.displayName)).toEqual(names);
      expect(new Set(got.map((r) => r.id)).size).toBe(names.length);
      const [{ n }] = await query<{ n: number }>(
        a.databaseUrl,
        "select count(*)::int as n from webhook_deliveries where webhook_id = $1 and attempt = 1 and status_code = 200",
        [e.id],
      );
      expect(n).toBe(names.length);
    }
  });

  it("hand an endpoint over when the replica delivering to it shuts down mid-attempt", async () => {
    const a = await server({ WEBHOOK_ALLOW_PRIVATE: "true" });
    const admin = await adminToken(a.url);
    const r = await receiver();
    const res = await clients(a.url, "grpc", () => admin).webhooks.createWebhook({
      url: r.url,
      eventTypes: ["user.updated"],
    });
    let hang = true;
    r.answer = async () => {
      // The first attempt never gets an answer: its replica shuts down while it waits.
      while (hang) await new Promise((done) => setTimeout(done, 20));
      return 200;
    };
    const m = await createMember(a.url, admin, { prefix: "wh-handover" });
    await clients(a.url, "grpc", () => admin).users.updateUser({
      user: { id: m.user.id, displayName: "handed over" },
      updateMask: { paths: ["display_name"] },
    });
    const [first] = await r.waitFor(1, aboutUser(m.user.id));
    await a.close();
    hang = false;
    expect(await leasesHeld(a.databaseUrl)).toBe(0);
    // Aborted by the shutdown: not recorded, so the event is still the endpoint's next one.
    expect(
      await query(a.databaseUrl, "select 1 from webhook_deliveries where webhook_id = $1", [res.webhook?.id]),
    ).toEqual([]);
    await server({ WEBHOOK_ALLOW_PRIVATE: "true", DATABASE_URL: a.databaseUrl });
    const [, second] = await r.waitFor(2, aboutUser(m.user.id));
    expect(second.id).toBe(first.id);
    expect(second.body).toBe(first.body);
  });
});

describe("concurrency", () => {
  it("delivers to at most WEBHOOK_CONCURRENCY endpoints at once per replica, and to that many in parallel", async () => {
    const s = await server({ WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_CONCURRENCY: "2" });
    const admin = await adminToken(s.url);
    let inFlight = 0;
    let most = 0;
    const endpoints = await Promise.all(
      [1, 2, 3, 4, 5].map(async () => {
        const r = await receiver();
        r.answer = async () => {
          most = Math.max(most, ++inFlight);
          await new Promise((done) => setTimeout(done, 300));
          inFlight--;
          return 200;
        };
        await clients(s.url, "grpc", () => admin).webhooks.createWebhook({ url: r.url, eventTypes: ["user.updated"] });
        return r;
      }),
    );
    const m = await createMember(s.url, admin, { prefix: "wh-concurrency" });
    await clients(s.url, "grpc", () => admin).users.updateUser({
      user: { id: m.user.id, displayName: "five endpoints" },
      updateMask: { paths: ["display_name"] },
    });
    for (const r of endpoints) await r.waitFor(1, aboutUser(m.user.id));
    expect(most).toBe(2);
  });
});

describe("the SSRF guard at delivery time", () => {
  it("refuses to call a private address from a replica without WEBHOOK_ALLOW_PRIVATE", async () => {
    const allowing = await server({ WEBHOOK_ALLOW_PRIVATE: "true" });
    const r = await receiver();
    const res = await clients(allowing.url, "grpc", () => "")
      .webhooks.createWebhook({ url: r.url })
      .catch(() => null);
    expect(res).toBeNull();
    const admin = await adminToken(allowing.url);
    const created = await clients(allowing.url, "grpc", () => admin).webhooks.createWebhook({
      url: r.url,
      eventTypes: ["user.updated"],
    });
    const webhookId = created.webhook?.id ?? "";
    await allowing.close();

    const strict = await server({ DATABASE_URL: allowing.databaseUrl });
    const strictAdmin = await adminToken(strict.url);
    const m = await createMember(strict.url, strictAdmin, { prefix: "wh-ssrf" });
    await clients(strict.url, "grpc", () => strictAdmin).users.updateUser({
      user: { id: m.user.id, displayName: "never sent" },
      updateMask: { paths: ["display_name"] },
    });
    const deliveries = await until(
      async () =>
        (await clients(strict.url, "grpc", () => strictAdmin).webhooks.listWebhookDeliveries({ webhookId })).deliveries,
      (d) => d.length >= 1,
    );
    expect(deliveries[0]).toMatchObject({ eventType: "user.updated", attempt: 1, statusCode: 0 });
    expect(deliveries[0].error).toMatch(/loopback, private, link-local/);
    expect(deliveries[0].nextAttemptTime).toBeDefined();
    const samples = parsePrometheusText(await (await fetch(`${strict.url}/metrics`)).text());
    expect(samples.get(sampleKey("webhook_delivery_failures_total", { reason: "blocked" }))).toBeGreaterThanOrEqual(1);
    expect(r.received).toEqual([]);
  });
});
