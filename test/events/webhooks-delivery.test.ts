/**
 * Webhook delivery over the wire (docs/webhooks.md), to a real local HTTP endpoint: user changes and auth
 * events arrive signed as Standard Webhooks says (checked by a verifier written here with node:crypto, not
 * the package the service signs with), in event order; a failing endpoint gets the same event with the same
 * webhook-id until it answers 2xx, and later events wait; after 3 days of failures the endpoint is DISABLED
 * and nothing more is sent; a delivery in flight does not bring back an endpoint deleted meanwhile; /metrics
 * counts attempts, failures and lag; old attempts are pruned; the secret is not in clear in any table or log.
 */
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebhookState } from "../../gen/events/v1/webhook_service_pb.js";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { type Received, startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";

let server: TestServer;
let admin: string;
const receivers: WebhookReceiver[] = [];
/** Every secret handed out: none may be in a table or a log line in clear. */
const secrets: string[] = [];

beforeAll(async () => {
  server = await startTestServer({
    WEBHOOK_ALLOW_PRIVATE: "true",
    WEBHOOK_RETRY_BASE: "100ms",
    PRUNE_INTERVAL: "300ms",
  });
  admin = await adminToken(server.url);
});
afterAll(async () => {
  await server?.close();
  await Promise.all(receivers.map((r) => r.close()));
});

const as = () => clients(server.url, "grpc", () => admin);
const sql = <T extends Record<string, unknown>>(text: string, params: unknown[] = []) =>
  query<T>(server.databaseUrl, text, params);

async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > end)
      throw new Error(`timed out; last: ${JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A receiver and a webhook pointing at it. */
async function endpoint(eventTypes: string[] = []) {
  const receiver = await startWebhookReceiver();
  receivers.push(receiver);
  const res = await as().webhooks.createWebhook({ url: receiver.url, eventTypes });
  if (!res.webhook) throw new Error("no webhook");
  secrets.push(res.secret);
  return { receiver, webhook: res.webhook, secret: res.secret };
}

/** The Standard Webhooks check, done by hand: HMAC-SHA256 of `id.timestamp.body` under the decoded secret. */
function signatureValid(secret: string, r: Received): boolean {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const signed = `${r.headers["webhook-id"]}.${r.headers["webhook-timestamp"]}.${r.body}`;
  const expected = `v1,${createHmac("sha256", key).update(signed).digest("base64")}`;
  return String(r.headers["webhook-signature"]).split(" ").includes(expected);
}

/** The body as sent: `data` is a UserChange or an AuthEvent in proto JSON (the fields the tests read). */
interface Payload {
  type: string;
  timestamp: string;
  data: { id?: string; type?: string; email?: string; user?: { id: string; displayName?: string } };
}
const bodyOf = (r: Received) => JSON.parse(r.body) as Payload;
const aboutUser = (userId: string) => (r: Received) => JSON.stringify(bodyOf(r).data).includes(userId);

async function rename(userId: string, displayName: string): Promise<void> {
  await as().users.updateUser({ user: { id: userId, displayName }, updateMask: { paths: ["display_name"] } });
}

const deliveriesOf = async (webhookId: string) =>
  (await as().webhooks.listWebhookDeliveries({ webhookId, pageSize: 1000 })).deliveries;

describe("delivery", () => {
  it("delivers a user change and an auth event, signed, with the event id as webhook-id, in event order", async () => {
    const { receiver, webhook, secret } = await endpoint();
    const m = await createMember(server.url, admin, { prefix: "wh-sig" });
    await failure(clients(server.url, "grpc").auth.login({ email: m.email, password: "wrong-password-1" }));
    const got = await receiver.waitFor(3, aboutUser(m.user.id));
    const [created] = got.filter((r) => bodyOf(r).type === "user.created");
    const [failed] = await receiver.waitFor(
      1,
      (r) => bodyOf(r).type === "auth.login_failed" && aboutUser(m.user.id)(r),
    );

    for (const r of [created, failed]) {
      expect(signatureValid(secret, r)).toBe(true);
      expect(signatureValid(`whsec_${Buffer.alloc(32, 1).toString("base64")}`, r)).toBe(false);
      expect(Math.abs(Number(r.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(60);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(r.headers["user-agent"]).toMatch(/^user-service-webhooks\//);
    }
    const [change] = await sql<{ id: string; seq: string }>(
      "select id::text, seq::text from user_changes where user_id = $1 and type = 'created'",
      [m.user.id],
    );
    expect(created.id).toBe(change.id);
    expect(bodyOf(created)).toMatchObject({
      type: "user.created",
      data: { eventId: change.id, type: "WATCH_EVENT_TYPE_CREATED", user: { id: m.user.id, email: m.email } },
    });
    expect(new Date(bodyOf(created).timestamp).toISOString()).toBe(bodyOf(created).timestamp);
    expect(bodyOf(failed)).toMatchObject({ type: "auth.login_failed", data: { id: failed.id, email: m.email } });
    expect(bodyOf(failed).data.type).toBe("AUTH_EVENT_TYPE_LOGIN_FAILED");

    // Everything this endpoint got, in the one order of events (seq), each once.
    const seqs = await sql<{ id: string; seq: string }>(
      `select id::text, seq::text from user_changes where seq is not null
       union all select id::text, seq::text from auth_events where seq is not null`,
    );
    const seqOf = new Map(seqs.map((s) => [s.id, Number(s.seq)]));
    const order = receiver.received.map((r) => seqOf.get(r.id) ?? Number.NaN);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(order).size).toBe(order.length);
    const deliveries = await deliveriesOf(webhook.id);
    expect(deliveries.find((d) => d.eventId === created.id)).toMatchObject({
      eventType: "user.created",
      attempt: 1,
      statusCode: 200,
      error: "",
    });
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
  });

  it("retries a failing event with the same webhook-id, and later events wait for it", async () => {
    const { receiver, webhook } = await endpoint(["user.updated"]);
    const m = await createMember(server.url, admin, { prefix: "wh-retry" });
    let failuresLeft = 2;
    receiver.answer = () => (failuresLeft-- > 0 ? 500 : 200);
    for (const name of ["first", "second", "third"]) await rename(m.user.id, name);
    const got = await receiver.waitFor(5, aboutUser(m.user.id));
    expect(got.map((r) => bodyOf(r).data.user?.displayName)).toEqual(["first", "first", "first", "second", "third"]);
    expect(new Set(got.slice(0, 3).map((r) => r.id)).size).toBe(1);
    expect(new Set(got.map((r) => r.id)).size).toBe(3);
    // Each retry after the backoff: 100 ms, then 200 ms.
    expect(got[1].time - got[0].time).toBeGreaterThanOrEqual(90);
    expect(got[2].time - got[1].time).toBeGreaterThanOrEqual(190);

    const deliveries = await until(
      () => deliveriesOf(webhook.id),
      (d) => d.length >= 5,
    );
    const first = deliveries.filter((d) => d.eventId === got[0].id).reverse();
    expect(first.map((d) => [d.attempt, d.statusCode, d.error !== ""])).toEqual([
      [1, 500, true],
      [2, 500, true],
      [3, 200, false],
    ]);
    expect(first[0].error).toBe("the endpoint answered HTTP 500");
    expect(first[0].nextAttemptTime).toBeDefined();
    expect(first[2].nextAttemptTime).toBeUndefined();
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
  });

  it("disables an endpoint that has failed for 3 days, and sends it nothing more", async () => {
    const { receiver, webhook } = await endpoint(["user.updated"]);
    const control = await endpoint(["user.updated"]);
    receiver.answer = () => 503;
    const m = await createMember(server.url, admin, { prefix: "wh-3d" });
    await rename(m.user.id, "fails");
    await receiver.waitFor(1, aboutUser(m.user.id));
    // Failing for 3 days already: the next failure disables it.
    await sql(
      "update webhooks set failing_since = now() - interval '3 days 1 minute', next_attempt_time = now() where id = $1",
      [webhook.id],
    );
    const disabled = await until(
      async () => (await as().webhooks.listWebhooks({})).webhooks.find((w) => w.id === webhook.id),
      (w) => w?.state === WebhookState.DISABLED,
    );
    expect(disabled?.state).toBe(WebhookState.DISABLED);
    const [last] = await deliveriesOf(webhook.id);
    expect(last).toMatchObject({ statusCode: 503 });
    expect(last.nextAttemptTime).toBeUndefined();
    const before = receiver.received.length;

    await rename(m.user.id, "after");
    await control.receiver.waitFor(1, (r) => aboutUser(m.user.id)(r) && bodyOf(r).data.user?.displayName === "after");
    await until(
      () => sql<{ n: number }>("select count(*)::int as n from webhooks where lease_owner is not null"),
      ([r]) => r.n === 0,
    );
    expect(receiver.received.length).toBe(before);
    expect((await deliveriesOf(webhook.id)).length).toBe(before);
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
    await as().webhooks.deleteWebhook({ webhookId: control.webhook.id });
  });

  it("verifies an https endpoint's certificate although it connects to the address it checked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "webhook-tls-"));
    let tls: { key: string; cert: string };
    try {
      execFileSync(
        "openssl",
        [
          ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"],
          ...[
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            join(dir, "key.pem"),
            "-out",
            join(dir, "cert.pem"),
          ],
        ],
        { stdio: "ignore" },
      );
      tls = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const receiver = await startWebhookReceiver({ tls });
    receivers.push(receiver);
    const created = await as().webhooks.createWebhook({ url: receiver.url, eventTypes: ["user.updated"] });
    const webhookId = created.webhook?.id ?? "";
    const m = await createMember(server.url, admin, { prefix: "wh-tls" });
    await rename(m.user.id, "over tls");
    const [d] = await until(
      () => deliveriesOf(webhookId),
      (ds) => ds.length >= 1,
    );
    // A self-signed certificate is no certificate a client should trust: the request is never sent.
    expect(d).toMatchObject({ statusCode: 0, attempt: 1 });
    expect(d.error).toMatch(/^network error: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)$/);
    expect(receiver.received).toEqual([]);
    await as().webhooks.deleteWebhook({ webhookId });
  });

  it("fences a replica that lost its lease: its success moves no cursor and logs no attempt", async () => {
    const { receiver, webhook } = await endpoint(["user.updated"]);
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    receiver.answer = async () => {
      await held;
      return 200;
    };
    const m = await createMember(server.url, admin, { prefix: "wh-fence" });
    await rename(m.user.id, "fenced");
    const [first] = await receiver.waitFor(1, aboutUser(m.user.id));
    const [{ cursor_seq: cursor }] = await sql<{ cursor_seq: string }>(
      "select cursor_seq from webhooks where id = $1",
      [webhook.id],
    );
    // Another owner takes the lease while the attempt waits for its answer (as after a 30 s stall).
    await sql(
      "update webhooks set lease_owner = gen_random_uuid(), lease_until = now() + interval '1 hour' where id = $1",
      [webhook.id],
    );
    release();
    // The late success is written nowhere; once the lease is free, the event is sent again, same id.
    // With WEBHOOK_CONCURRENCY=1 the probe is delivered only after the fenced worker has finished.
    const probe = await endpoint(["user.updated"]);
    await rename(m.user.id, "probe");
    await probe.receiver.waitFor(1, aboutUser(m.user.id));
    expect(await sql("select cursor_seq from webhooks where id = $1", [webhook.id])).toEqual([{ cursor_seq: cursor }]);
    expect(await deliveriesOf(webhook.id)).toEqual([]);
    await sql("update webhooks set lease_owner = null, lease_until = null where id = $1", [webhook.id]);
    const [, again] = await receiver.waitFor(2, aboutUser(m.user.id));
    expect(again.id).toBe(first.id);
    const delivered = await until(
      async () => (await deliveriesOf(webhook.id)).filter((d) => d.eventId === first.id),
      (d) => d.length > 0,
    );
    expect(delivered.map((d) => [d.attempt, d.statusCode])).toEqual([[1, 200]]);
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
    await as().webhooks.deleteWebhook({ webhookId: probe.webhook.id });
  });

  it("does not bring back an endpoint deleted while a delivery to it is in flight", async () => {
    const { receiver, webhook } = await endpoint(["user.updated"]);
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    receiver.answer = async () => {
      await held;
      return 200;
    };
    const m = await createMember(server.url, admin, { prefix: "wh-del" });
    await rename(m.user.id, "in flight");
    await receiver.waitFor(1, aboutUser(m.user.id));
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
    const probe = await endpoint(["user.updated"]);
    await rename(m.user.id, "probe");
    release();
    // With WEBHOOK_CONCURRENCY=1 the probe is delivered only after the held worker has recorded its answer.
    await probe.receiver.waitFor(1, aboutUser(m.user.id));
    expect(await sql("select 1 from webhooks where id = $1", [webhook.id])).toEqual([]);
    expect(await sql("select 1 from webhook_deliveries where webhook_id = $1", [webhook.id])).toEqual([]);
    await as().webhooks.deleteWebhook({ webhookId: probe.webhook.id });
  });
});

describe("metrics, pruning, secrets", () => {
  it("counts attempts and failures and reports lag per webhook on /metrics", async () => {
    const { receiver, webhook } = await endpoint(["user.updated"]);
    let fail = true;
    receiver.answer = () => (fail ? 500 : 200);
    const scrape = async () => parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
    const before = await scrape();
    const m = await createMember(server.url, admin, { prefix: "wh-metrics" });
    await rename(m.user.id, "lagging");
    await receiver.waitFor(1, aboutUser(m.user.id));
    const failed = (s: Map<string, number>) =>
      s.get(sampleKey("webhook_delivery_failures_total", { reason: "status" })) ?? 0;
    // Failing (retried every 100 ms): counted as failures, and the endpoint lags behind the newest event.
    const lagging = await until(scrape, (s) => failed(s) > failed(before));
    expect(lagging.get(sampleKey("webhook_delivery_lag_seconds", { webhook_id: webhook.id }))).toBeGreaterThan(0);
    expect(failed(lagging)).toBeGreaterThan(failed(before));
    for (const reason of ["timeout", "network", "blocked"])
      expect(lagging.has(sampleKey("webhook_delivery_failures_total", { reason }))).toBe(true);
    fail = false;
    await receiver.waitFor(2, aboutUser(m.user.id));
    const caughtUp = await until(
      scrape,
      (s) => s.get(sampleKey("webhook_delivery_lag_seconds", { webhook_id: webhook.id })) === 0,
    );
    const ok = (s: Map<string, number>) =>
      s.get(sampleKey("webhook_delivery_attempts_total", { result: "success" })) ?? 0;
    expect(ok(caughtUp)).toBeGreaterThan(ok(before));
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
    const gone = await scrape();
    expect(gone.has(sampleKey("webhook_delivery_lag_seconds", { webhook_id: webhook.id }))).toBe(false);
  });

  it("prunes delivery attempts older than 7 days", async () => {
    const { webhook } = await endpoint(["user.deleted"]);
    await sql(
      `insert into webhook_deliveries (webhook_id, event_id, event_type, attempt, status_code, error, time)
       values ($1, 'old', 'user.deleted', 1, 200, '', now() - interval '8 days'),
              ($1, 'recent', 'user.deleted', 1, 200, '', now() - interval '6 days')`,
      [webhook.id],
    );
    await until(
      () => sql<{ event_id: string }>("select event_id from webhook_deliveries where webhook_id = $1", [webhook.id]),
      (rows) => rows.length === 1,
    );
    expect((await deliveriesOf(webhook.id)).map((d) => d.eventId)).toEqual(["recent"]);
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
  });

  it("keeps every secret out of the tables (sealed) and out of the logs", async () => {
    const { webhook, secret } = await endpoint();
    const m = await createMember(server.url, admin, { prefix: "wh-secret" });
    const tables = await sql<{ name: string }>("select tablename as name from pg_tables where schemaname = 'public'");
    let dump = "";
    for (const { name } of tables) {
      const rows = await sql<{ t: string | null }>(`select string_agg(t::text, '|') as t from "${name}" t`);
      dump += rows[0].t ?? "";
    }
    expect(dump).toContain(webhook.id);
    expect(dump).toContain(m.user.id);
    const logs = server.logText();
    for (const s of [...secrets, secret]) {
      const raw = Buffer.from(s.slice("whsec_".length), "base64");
      for (const form of [s, s.slice("whsec_".length), raw.toString("hex"), Buffer.from(s).toString("hex")]) {
        expect(dump).not.toContain(form);
        expect(logs).not.toContain(form);
      }
    }
    await as().webhooks.deleteWebhook({ webhookId: webhook.id });
  });
});
