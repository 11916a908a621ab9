/**
 * The console's webhooks view in Chromium, over both transports: an admin creates a webhook (its signing
 * secret shown once), a user change reaches a real local receiver and its delivery is listed with the
 * receiver's status; a failing receiver's attempt shows its status and the next retry; a bad event type is
 * a field error that creates nothing; Delete removes the endpoint.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { clients } from "../helpers/clients.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { launchChromium, screenshotOnFailure, skipWithoutChromium, type TestBrowser } from "./chromium.ts";
import { dialog, signIn } from "./console-page.ts";

for (const transport of ["connect", "grpc-web"] as const) {
  describe.skipIf(skipWithoutChromium)(`the console's webhooks over ${transport}`, () => {
    let server: TestServer;
    let browser: TestBrowser;
    let page: Page;
    let receiver: Server;
    let receiverUrl = "";
    let answer = 200;
    const received: { id: string; type: string }[] = [];
    let adminToken = "";

    beforeAll(async () => {
      await ensureWebBuilt();
      receiver = createServer((req, res) => {
        let body = "";
        req.on("data", (c) => {
          body += c;
        });
        req.on("end", () => {
          received.push({ id: String(req.headers["webhook-id"]), type: JSON.parse(body).type });
          res.writeHead(answer).end();
        });
      });
      await new Promise<void>((done) => receiver.listen(0, "127.0.0.1", done));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/${transport}`;
      server = await startTestServer({ WEBHOOK_ALLOW_PRIVATE: "true", WEBHOOK_RETRY_BASE: "30s" });
      browser = await launchChromium();
      page = await browser.context.newPage();
      page.setDefaultTimeout(5000);
      adminToken = (await clients(server.url, "connect-h1").auth.login(ADMIN)).tokens?.accessToken ?? "";
      await page.goto(`${server.url}/${transport === "connect" ? "?transport=connect" : ""}`);
      await signIn(page);
    });
    afterAll(async () => {
      await browser?.close();
      await server?.close();
      await new Promise((done) => receiver?.close(done));
    });
    screenshotOnFailure(`console-webhooks-${transport}`, () => page);
    afterEach(async () => {
      if (await dialog(page).isVisible()) await page.keyboard.press("Escape");
    });

    const createUser = (name: string) =>
      clients(server.url, "connect-h1", () => adminToken).users.createUser({
        user: { email: `${name}-${transport}@example.com`, displayName: name },
      });

    it("creates a webhook and shows its secret once", async () => {
      await page.getByRole("button", { name: "Webhooks" }).click();
      const d = dialog(page);
      await d.getByLabel("URL").fill(receiverUrl);
      await d.getByLabel("Event types").fill("user.created");
      await d.getByLabel("Description").fill("console test");
      await d.getByRole("button", { name: "Create webhook" }).click();
      expect(await d.getByTestId("webhook-secret").textContent()).toMatch(/^whsec_[A-Za-z0-9+/=]{40,}$/);
      const row = d.locator(`tr[data-url="${receiverUrl}"]`);
      expect(await row.locator('[data-col="event_types"]').textContent()).toBe("user.created");
      expect(await row.locator('[data-col="state"]').textContent()).toBe("active");
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("lists a delivery the receiver accepted, then a failed one with its next attempt", async () => {
      const { user } = await createUser("hooked");
      await expect.poll(() => received.filter((r) => r.type === "user.created").length, { timeout: 5000 }).toBe(1);
      await page.getByRole("button", { name: "Webhooks" }).click();
      const d = dialog(page);
      await d.locator(`tr[data-url="${receiverUrl}"]`).getByRole("button", { name: "Deliveries" }).click();
      const rows = d.locator("section.deliveries tbody tr[data-event-id]");
      await expect.poll(() => rows.count()).toBe(1);
      expect(await rows.nth(0).locator('[data-col="event_type"]').textContent()).toBe("user.created");
      expect(await rows.nth(0).locator('[data-col="status"]').textContent()).toBe("200");
      expect(user?.id).toBeTruthy();

      answer = 503;
      await createUser("refused");
      await expect.poll(() => received.length, { timeout: 5000 }).toBe(2);
      await expect
        .poll(
          async () => {
            await d.getByRole("button", { name: "Refresh" }).click();
            return rows.count();
          },
          { timeout: 5000 },
        )
        .toBe(2);
      const failed = rows.nth(0);
      expect(await failed.locator('[data-col="status"]').textContent()).toBe("503");
      expect(await failed.locator('[data-col="attempt"]').textContent()).toBe("1");
      expect(await failed.locator('[data-col="next_attempt"]').textContent()).not.toBe("");
      answer = 200;
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("shows an unknown event type as a field error and creates nothing", async () => {
      await page.getByRole("button", { name: "Webhooks" }).click();
      const d = dialog(page);
      // The list loads after the dialog opens: count once the first test's webhook is in it.
      await d.locator(`tr[data-url="${receiverUrl}"]`).waitFor();
      const before = await d.locator("tbody tr[data-webhook-id]").count();
      await d.getByLabel("URL").fill(`${receiverUrl}/other`);
      await d.getByLabel("Event types").fill("user.exploded");
      await d.getByRole("button", { name: "Create webhook" }).click();
      await expect.poll(() => d.locator('[data-error-for="event_types"]').textContent()).not.toBe("");
      expect(await d.getByTestId("webhook-secret").count()).toBe(0);
      expect(await d.locator("tbody tr[data-webhook-id]").count()).toBe(before);
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("deletes a webhook", async () => {
      await page.getByRole("button", { name: "Webhooks" }).click();
      const d = dialog(page);
      await d.locator(`tr[data-url="${receiverUrl}"]`).getByRole("button", { name: "Delete" }).click();
      await d.locator(`tr[data-url="${receiverUrl}"]`).waitFor({ state: "detached" });
      const { webhooks } = await clients(server.url, "connect-h1", () => adminToken).webhooks.listWebhooks({});
      expect(webhooks.map((w) => w.url)).not.toContain(receiverUrl);
      await d.getByRole("button", { name: "Close" }).click();
    });
  });
}
