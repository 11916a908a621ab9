/**
 * The console on another origin than the service: the page comes from a static server on its own port and
 * calls the service at `?api=`, which allows that origin in CORS_ALLOWED_ORIGINS. Over both transports;
 * and a service that does not allow the origin is explained, not shown as a raw failure.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { clients } from "../helpers/clients.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { launchChromium, screenshotOnFailure, skipWithoutChromium, type TestBrowser } from "./chromium.ts";
import { cell, dialog, fillUserForm, LIVE_MS, signIn, waitForText } from "./console-page.ts";
import { type StaticServer, startStaticServer } from "./static-server.ts";

describe.skipIf(skipWithoutChromium)("the console served from another origin", () => {
  let site: StaticServer;
  let service: TestServer;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    await ensureWebBuilt();
    site = await startStaticServer();
    service = await startTestServer({ CORS_ALLOWED_ORIGINS: site.origin });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.close();
    await site?.close();
  });
  screenshotOnFailure("cross-origin", () => page);

  for (const transport of ["grpc-web", "connect"] as const) {
    it(`signs in, creates and sees live changes over ${transport}`, async () => {
      page = await browser.context.newPage();
      page.setDefaultTimeout(5000);
      await page.goto(`${site.origin}/?api=${encodeURIComponent(service.url)}&transport=${transport}`);
      // The form says where the password goes, since the link chose it.
      await page.getByText(`Your password goes to ${service.url}`).waitFor();
      await signIn(page);

      const email = `far-${transport}@example.com`;
      await page.getByRole("button", { name: "New user" }).click();
      await fillUserForm(page, { email, displayName: "From afar" });
      await dialog(page).getByRole("button", { name: "Create" }).click();
      await waitForText(cell(page, email, "display_name"), "From afar");

      let token = "";
      const other = clients(service.url, "grpc-web-h1", () => token);
      token = (await other.auth.login(ADMIN)).tokens?.accessToken ?? "";
      const user = (await other.users.listUsers({ filter: `email = "${email}"` })).users[0];
      await other.users.updateUser({
        user: { id: user.id, displayName: "Seen live" },
        updateMask: { paths: ["display_name"] },
      });
      await waitForText(cell(page, email, "display_name"), "Seen live", LIVE_MS);
      await page.close();
    });
  }

  it("explains a service that does not allow the page's origin", async () => {
    const closed = await startTestServer();
    try {
      page = await browser.context.newPage();
      page.setDefaultTimeout(5000);
      await page.goto(`${site.origin}/?api=${encodeURIComponent(closed.url)}`);
      await page.getByLabel("Email").fill(ADMIN.email);
      await page.getByLabel("Password").fill(ADMIN.password);
      await page.getByRole("button", { name: "Sign in" }).click();
      const alert = page.getByRole("alert");
      await alert.getByText(`Cannot reach the service at ${closed.url}`).waitFor();
      expect(await alert.textContent()).toContain("CORS_ALLOWED_ORIGINS");
    } finally {
      await closed.close();
    }
  });
});
