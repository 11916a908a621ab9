/**
 * The console's access views in Chromium, over both transports: an admin opens a user's sessions and API
 * keys, revokes one session (that client's refresh token stops working), creates a key (its secret, shown
 * once, works as a bearer token for a backend), and deletes it (it stops working). Any signed-in person sees
 * their own sessions, with the one they are using marked.
 */
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { UserKind } from "../../gen/user/v1/user_pb.js";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { clients, failure } from "../helpers/clients.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { launchChromium, screenshotOnFailure, skipWithoutChromium, type TestBrowser } from "./chromium.ts";
import { dialog, row, signIn } from "./console-page.ts";

for (const transport of ["connect", "grpc-web"] as const) {
  describe.skipIf(skipWithoutChromium)(`the console's access views over ${transport}`, () => {
    let server: TestServer;
    let browser: TestBrowser;
    let page: Page;
    let adminToken = "";
    const person = { email: `kim-${transport}@example.com`, password: "kim-password-123" };
    const service = `billing-${transport}@example.com`;

    beforeAll(async () => {
      await ensureWebBuilt();
      server = await startTestServer();
      browser = await launchChromium();
      page = await browser.context.newPage();
      page.setDefaultTimeout(5000);
      const admin = clients(server.url, "connect-h1", () => adminToken);
      adminToken = (await admin.auth.login(ADMIN)).tokens?.accessToken ?? "";
      await admin.users.createUser({ user: { email: person.email, displayName: "Kim" }, password: person.password });
      await admin.users.createUser({ user: { email: service, displayName: "Billing", kind: UserKind.SERVICE } });
      const query = transport === "connect" ? "?transport=connect" : "";
      await page.goto(`${server.url}/${query}`);
      await signIn(page);
    });
    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });
    screenshotOnFailure(`console-access-${transport}`, () => page);
    afterEach(async () => {
      // A step that failed with its dialog open must not take the next steps down with it.
      if (await dialog(page).isVisible()) await page.keyboard.press("Escape");
    });

    it("shows a user's sessions and revokes one: that session's refresh token stops working", async () => {
      const kim = clients(server.url, "connect-h1", () => undefined);
      const laptop = await kim.auth.login(person);
      const phone = await kim.auth.login(person);
      const sid = (jwt: string | undefined) =>
        JSON.parse(Buffer.from((jwt ?? "").split(".")[1], "base64url").toString()).sid as string;
      await row(page, person.email).getByRole("button", { name: "Access" }).click();
      const d = dialog(page);
      const sessions = d.getByRole("region", { name: "Sessions" }).locator("tbody tr[data-session-id]");
      await expect.poll(() => sessions.count()).toBe(2);
      const laptopRow = d.locator(`tr[data-session-id="${sid(laptop.tokens?.accessToken)}"]`);
      expect(await laptopRow.locator('[data-col="client_address"]').textContent()).toBe("127.0.0.1");
      await laptopRow.getByRole("button", { name: "Revoke" }).click();
      await laptopRow.waitFor({ state: "detached" });
      expect(await sessions.count()).toBe(1);
      expect((await failure(kim.auth.refreshToken({ refreshToken: laptop.tokens?.refreshToken ?? "" }))).reason).toBe(
        "UNAUTHENTICATED",
      );
      expect((await kim.auth.refreshToken({ refreshToken: phone.tokens?.refreshToken ?? "" })).tokens).toBeDefined();
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("creates an API key for a service account, shows its secret once, and deletes it", async () => {
      await row(page, service).getByRole("button", { name: "Access" }).click();
      const d = dialog(page);
      await d.getByLabel("Key name").fill("nightly export");
      await d.getByRole("button", { name: "Create key" }).click();
      const secret = (await d.getByTestId("api-key-secret").textContent()) ?? "";
      expect(secret).toMatch(/^usk_/);
      const keyRow = d.locator('tr[data-key-name="nightly export"]');
      await keyRow.waitFor();
      expect(await keyRow.locator('[data-col="prefix"]').textContent()).toBe(`${secret.slice(0, 12)}…`);

      const backend = clients(server.url, "grpc", () => secret);
      const me = await backend.auth.getCurrentUser({});
      expect(me.user?.email).toBe(service);

      await keyRow.getByRole("button", { name: "Delete" }).click();
      await keyRow.waitFor({ state: "detached" });
      await expect
        .poll(async () => (await failure(backend.auth.getCurrentUser({})).catch(() => ({ reason: "works" }))).reason, {
          timeout: 2000,
        })
        .toBe("UNAUTHENTICATED");
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("shows a key name that is too long as a field error, and creates nothing", async () => {
      await row(page, service).getByRole("button", { name: "Access" }).click();
      const d = dialog(page);
      await d.getByLabel("Key name").fill("x".repeat(101));
      await d.getByRole("button", { name: "Create key" }).click();
      await expect.poll(() => d.locator('[data-error-for="display_name"]').textContent()).not.toBe("");
      expect(await d.getByTestId("api-key-secret").count()).toBe(0);
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("shows a user's history: each change, the fields it changed, and who made it", async () => {
      const admin = clients(server.url, "connect-h1", () => adminToken);
      const kim = (await admin.users.listUsers({ filter: `email = "${person.email}"` })).users[0];
      await admin.users.updateUser({
        user: { id: kim.id, displayName: "Kim K." },
        updateMask: { paths: ["display_name"] },
      });
      await row(page, person.email).getByRole("button", { name: "History" }).click();
      const d = dialog(page);
      const rows = d.locator("tbody tr[data-event-id]");
      await expect.poll(() => rows.count()).toBe(2);
      // Newest first: the rename, then the creation, both by the admin with a token.
      expect(await rows.nth(0).locator('[data-col="type"]').textContent()).toBe("updated");
      expect(await rows.nth(0).locator('[data-col="changed_fields"]').textContent()).toBe("display_name");
      expect(await rows.nth(0).locator('[data-col="actor"]').textContent()).toBe(ADMIN.email);
      expect(await rows.nth(1).locator('[data-col="type"]').textContent()).toBe("created");
      await d.getByRole("button", { name: "Close" }).click();
    });

    it("shows the signed-in person's own sessions, the current one marked", async () => {
      await page.getByRole("button", { name: "My sessions" }).click();
      const d = dialog(page);
      await d.locator("tbody tr[data-session-id]").first().waitFor();
      expect(await d.getByText("this session").count()).toBe(1);
      await d.getByRole("button", { name: "Close" }).click();
    });
  });
}
