/**
 * The console end to end in Chromium, over one transport: sign in, create, validation errors next to
 * their fields, edit, changes made by a second client (connect-node) appearing live, an etag conflict,
 * filter/order/paging, suspend/delete/undelete, the live view resuming after a network blip, sign out.
 * The page is loaded through a TCP proxy so the blip can be real.
 */
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { type Clients, clients } from "../helpers/clients.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { launchChromium, screenshotOnFailure, skipWithoutChromium, type TestBrowser } from "./chromium.ts";
import { cell, dialog, fieldError, fillUserForm, LIVE_MS, row, signIn, waitForText } from "./console-page.ts";
import { type RpcRequest, recordRpcs, resumeTokenOf } from "./rpc-log.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

/** The content types each transport must use for unary and streaming calls. */
const wireTypes = {
  "grpc-web": ["application/grpc-web+proto"],
  connect: ["application/json", "application/connect+json"],
} as const;

/** Declares the suite for `transport`. */
export function describeConsole(transport: "grpc-web" | "connect"): void {
  describe.skipIf(skipWithoutChromium)(`the console over ${transport}`, () => {
    let server: TestServer;
    let proxy: TcpProxy;
    let browser: TestBrowser;
    let page: Page;
    let rpcs: RpcRequest[];
    let other: Clients;
    let otherToken = "";
    const email = `ada-${transport}@example.com`;

    beforeAll(async () => {
      await ensureWebBuilt();
      server = await startTestServer();
      proxy = await startTcpProxy(server.port);
      browser = await launchChromium();
      page = await browser.context.newPage();
      // Fail a step in seconds with the locator that was missing, not at the 30 s test timeout.
      page.setDefaultTimeout(5000);
      rpcs = recordRpcs(page);
      other = clients(server.url, "connect-h1", () => otherToken);
      otherToken = (await other.auth.login(ADMIN)).tokens?.accessToken ?? "";
    });
    afterAll(async () => {
      await browser?.close();
      await proxy?.close();
      await server?.close();
    });
    screenshotOnFailure(`console-${transport}`, () => page);
    afterEach(async () => {
      // A step that failed with its dialog open must not take the next steps down with it.
      if (await dialog(page).isVisible()) await page.keyboard.press("Escape");
    });

    const userId = async (mail: string) => (await other.users.listUsers({ filter: `email = "${mail}"` })).users[0];

    it("signs in and shows who you are", async () => {
      const query = transport === "connect" ? "?transport=connect" : "";
      await page.goto(`http://127.0.0.1:${proxy.port}/${query}`);
      await signIn(page);
      expect(await page.getByTestId("whoami").textContent()).toContain(ADMIN.email);
      expect(await page.getByTestId("whoami").textContent()).toContain("Admin");
      expect(await page.getByLabel("Protocol").first().inputValue()).toBe(transport);
    });

    it("creates a user and shows it in the table", async () => {
      await page.getByRole("button", { name: "New user" }).click();
      await fillUserForm(page, {
        email,
        displayName: "Ada Lovelace",
        labels: "team=engines",
        password: "correct horse battery",
      });
      await dialog(page).getByRole("button", { name: "Create" }).click();
      await dialog(page).waitFor({ state: "detached" });
      await waitForText(cell(page, email, "display_name"), "Ada Lovelace");
      expect(await cell(page, email, "labels").textContent()).toBe("team=engines");
      expect(await page.getByTestId("total").textContent()).toBe("2 users");
    });

    it("shows validation errors next to their fields, as sentences", async () => {
      await page.getByRole("button", { name: "New user" }).click();
      await fillUserForm(page, { email: "not-an-email", displayName: "Bad", labels: "Bad Key=1" });
      await dialog(page).getByRole("button", { name: "Create" }).click();
      await waitForText(dialog(page).getByRole("alert"), "Please correct the marked fields.");
      expect(await fieldError(page, "email").textContent()).toMatch(/email/i);
      expect(await fieldError(page, "labels").textContent()).not.toBe("");
      expect(await fieldError(page, "display_name").textContent()).toBe("");
      expect(await dialog(page).getByLabel("Email").getAttribute("aria-invalid")).toBe("true");
      // Sentences, not the wire format: no JSON keys, no status names.
      expect(await dialog(page).textContent()).not.toMatch(/"\w+"\s*:|INVALID_ARGUMENT|fieldViolations/);
      await dialog(page).getByRole("button", { name: "Cancel" }).click();
    });

    it("edits a user", async () => {
      await row(page, email).getByRole("button", { name: "Edit" }).click();
      await fillUserForm(page, { displayName: "Ada King", role: "Admin" });
      await dialog(page).getByRole("button", { name: "Save" }).click();
      await dialog(page).waitFor({ state: "detached" });
      await waitForText(cell(page, email, "display_name"), "Ada King");
      await waitForText(cell(page, email, "role"), "Admin");
    });

    it("shows changes made elsewhere within a second", async () => {
      const ada = await userId(email);
      // From before the call to the row changing on screen: the whole trip, through the service's change feed.
      let start = Date.now();
      await other.users.updateUser({
        user: { id: ada.id, displayName: "Countess of Lovelace" },
        updateMask: { paths: ["display_name"] },
      });
      await waitForText(cell(page, email, "display_name"), "Countess of Lovelace", LIVE_MS);
      expect(Date.now() - start).toBeLessThan(1000);
      start = Date.now();
      await other.users.createUser({ user: { email: `grace-${transport}@example.com`, displayName: "Grace Hopper" } });
      await waitForText(cell(page, `grace-${transport}@example.com`, "display_name"), "Grace Hopper", LIVE_MS);
      expect(Date.now() - start).toBeLessThan(1000);
      await page
        .getByRole("list", { name: "Live changes" })
        .getByText(`created grace-${transport}@example.com`)
        .waitFor({ timeout: 1000 });
    });

    it("shows an etag conflict clearly and reloads the current values", async () => {
      const ada = await userId(email);
      await row(page, email).getByRole("button", { name: "Edit" }).click();
      await other.users.updateUser({
        user: { id: ada.id, displayName: "Changed elsewhere" },
        updateMask: { paths: ["display_name"] },
      });
      await fillUserForm(page, { displayName: "My change" });
      await dialog(page).getByRole("button", { name: "Save" }).click();
      const alert = dialog(page).getByRole("alert");
      await alert.getByText("changed by someone else").waitFor();
      await alert.getByRole("button", { name: "Reload" }).click();
      await alert.getByText("Reloaded").waitFor();
      expect(await dialog(page).getByLabel("Display name").inputValue()).toBe("Changed elsewhere");
      await fillUserForm(page, { displayName: "My change" });
      await dialog(page).getByRole("button", { name: "Save" }).click();
      await dialog(page).waitFor({ state: "detached" });
      await waitForText(cell(page, email, "display_name"), "My change");
    });

    it("filters, orders and pages with page tokens and the total", async () => {
      for (let i = 0; i < 12; i++) {
        const n = String(i).padStart(2, "0");
        await other.users.createUser({ user: { email: `page-${n}@paging.test`, displayName: `Paging ${n}` } });
      }
      await page.getByLabel("Filter").fill('email:"@paging.test"');
      await page.getByRole("button", { name: "Apply" }).click();
      await waitForText(page.getByTestId("total"), "12 users");
      await page.getByLabel("Order").selectOption({ label: "Email A–Z" });
      await waitForText(page.locator("tbody tr").first().locator('[data-col="email"]'), "page-00@paging.test");
      expect(await page.locator("tbody tr[data-user-id]").count()).toBe(10);
      await page.getByRole("button", { name: "Next →" }).click();
      await waitForText(page.locator("tbody tr").first().locator('[data-col="email"]'), "page-10@paging.test");
      expect(await page.locator("tbody tr[data-user-id]").count()).toBe(2);
      expect(await page.getByRole("button", { name: "Next →" }).isDisabled()).toBe(true);
      await page.getByRole("button", { name: "← Previous" }).click();
      await waitForText(page.locator("tbody tr").first().locator('[data-col="email"]'), "page-00@paging.test");

      await page.getByLabel("Filter").fill("favourite_colour = 1");
      await page.getByRole("button", { name: "Apply" }).click();
      await page.locator('[data-error-for="filter"]').getByText("The filter is not valid").waitFor();
      expect(await page.getByLabel("Filter").getAttribute("aria-invalid")).toBe("true");

      await page.getByLabel("Filter").fill("");
      await page.getByRole("button", { name: "Apply" }).click();
      await waitForText(page.getByTestId("total"), "15 users");
    });

    it("suspends, deletes and undeletes", async () => {
      const target = "page-03@paging.test";
      await page.getByLabel("Filter").fill(`email = "${target}"`);
      await page.getByRole("button", { name: "Apply" }).click();
      await waitForText(page.getByTestId("total"), "1 user");
      await row(page, target).getByRole("button", { name: "Suspend" }).click();
      await waitForText(cell(page, target, "state"), "Suspended");
      await row(page, target).getByRole("button", { name: "Activate" }).click();
      await waitForText(cell(page, target, "state"), "Active");
      await row(page, target).getByRole("button", { name: "Delete" }).click();
      await row(page, target).waitFor({ state: "detached" });
      await page.getByLabel("Show deleted").check();
      await waitForText(cell(page, target, "state"), "Deleted");
      await row(page, target).getByRole("button", { name: "Undelete" }).click();
      await waitForText(cell(page, target, "state"), "Active");
      expect((await userId(target)).state).toBe(UserState.ACTIVE);
      await page.getByLabel("Show deleted").uncheck();
      await page.getByLabel("Filter").fill("");
      await page.getByRole("button", { name: "Apply" }).click();
      await waitForText(page.getByTestId("total"), "15 users");
    });

    it("resumes the live view with its last resume token after a network blip", async () => {
      const ada = await userId(email);
      // An event first, so the feed holds a token; then the blip, and a change while it is down.
      await other.users.updateUser({
        user: { id: ada.id, displayName: "Before the blip" },
        updateMask: { paths: ["display_name"] },
      });
      await waitForText(cell(page, email, "display_name"), "Before the blip", LIVE_MS);
      const watchesBefore = rpcs.filter((r) => r.method === "WatchUsers").length;
      proxy.cut();
      await other.users.updateUser({
        user: { id: ada.id, displayName: "During the blip" },
        updateMask: { paths: ["display_name"] },
      });
      await waitForText(cell(page, email, "display_name"), "During the blip", 5000);
      const resumed = rpcs.filter((r) => r.method === "WatchUsers").slice(watchesBefore);
      expect(resumed.length).toBeGreaterThan(0);
      expect(resumeTokenOf(resumed[0])).not.toBe("");
      await page.getByRole("status").filter({ hasText: "Live" }).first().waitFor();
    });

    it(`speaks ${transport} on the wire`, () => {
      const types = new Set(rpcs.map((r) => r.contentType.split(";")[0]));
      expect([...types].sort()).toEqual([...wireTypes[transport]].sort());
    });

    it("switches protocol with the select and stays signed in", async () => {
      const other = transport === "grpc-web" ? "connect" : "grpc-web";
      const before = rpcs.length;
      await page.getByLabel("Protocol").selectOption(other);
      await page.getByTestId("whoami").waitFor();
      await expect.poll(() => rpcs.slice(before).some((r) => r.method === "ListUsers")).toBe(true);
      await waitForText(page.getByTestId("total"), "15 users");
      expect(new URL(page.url()).searchParams.get("transport")).toBe(other === "connect" ? "connect" : null);
      const types = new Set(rpcs.slice(before).map((r) => r.contentType.split(";")[0]));
      expect([...types].every((t) => (wireTypes[other] as readonly string[]).includes(t))).toBe(true);
    });

    it("signs out", async () => {
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      await expect.poll(() => rpcs.some((r) => r.method === "Logout")).toBe(true);
    });
  });
}
