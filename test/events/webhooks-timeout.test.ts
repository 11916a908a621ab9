/**
 * The 10 s deadline of a webhook attempt (docs/webhooks.md): an endpoint that accepts the request and never
 * answers is a failed attempt after 10 s (status 0, counted as reason "timeout"), retried with the same
 * webhook-id. Its own file, as it has to wait the 10 s out.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";

let server: TestServer;
let receiver: WebhookReceiver;

beforeAll(async () => {
  server = await startTestServer({ WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_RETRY_BASE: "100ms" });
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  await server?.close();
  await receiver?.close();
});

it("gives up on an attempt after 10 s without an answer, and retries the same event", async () => {
  const admin = await adminToken(server.url);
  const as = clients(server.url, "grpc", () => admin);
  const created = await as.webhooks.createWebhook({ url: receiver.url, eventTypes: ["user.updated"] });
  const webhookId = created.webhook?.id ?? "";
  let hang = true;
  receiver.answer = async () => {
    // Never answered while `hang` holds (the socket is closed by the service's deadline).
    while (hang) await new Promise((done) => setTimeout(done, 50));
    return 200;
  };
  const m = await createMember(server.url, admin, { prefix: "wh-timeout" });
  await as.users.updateUser({ user: { id: m.user.id, displayName: "slow" }, updateMask: { paths: ["display_name"] } });
  const [first, second] = await receiver.waitFor(2, (r) => r.body.includes(m.user.id), 18_000);
  hang = false;
  expect(second.id).toBe(first.id);
  expect(second.time - first.time).toBeGreaterThanOrEqual(10_000);
  expect(second.time - first.time).toBeLessThan(14_000);
  const { deliveries } = await as.webhooks.listWebhookDeliveries({ webhookId });
  expect(deliveries.at(-1)).toMatchObject({ attempt: 1, statusCode: 0, error: "no answer within 10 s" });
  const samples = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
  expect(samples.get(sampleKey("webhook_delivery_failures_total", { reason: "timeout" }))).toBe(1);
}, 25_000);
