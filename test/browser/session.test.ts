/**
 * The session outlives its access tokens: with a 3-second token lifetime the console renews the token with
 * RefreshToken before it expires, keeps working, and its live view carries on with the new token (the
 * service ends a watch when the token it was opened with expires).
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { clients } from "../helpers/clients.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { launchChromium, screenshotOnFailure, skipWithoutChromium, type TestBrowser } from "./chromium.ts";
import { cell, LIVE_MS, signIn, waitForText } from "./console-page.ts";
import { type RpcRequest, recordRpcs } from "./rpc-log.ts";

const TTL_SECONDS = 3;

describe.skipIf(skipWithoutChromium)("the console's session", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let page: Page;
  let rpcs: RpcRequest[];

  beforeAll(async () => {
    await ensureWebBuilt();
    server = await startTestServer({ ACCESS_TOKEN_TTL: `${TTL_SECONDS}s` });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.setDefaultTimeout(5000);
    rpcs = recordRpcs(page);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  screenshotOnFailure("session", () => page);

  it("renews the access token before it expires and keeps the list and the live view working", async () => {
    await page.goto(server.url);
    await signIn(page);
    await new Promise((r) => setTimeout(r, TTL_SECONDS * 2500));
    expect(rpcs.filter((r) => r.method === "RefreshToken").length).toBeGreaterThanOrEqual(2);
    expect(await page.getByTestId("whoami").isVisible()).toBe(true);

    let token = "";
    const other = clients(server.url, "connect-h1", () => token);
    token = (await other.auth.login(ADMIN)).tokens?.accessToken ?? "";
    await other.users.createUser({ user: { email: "late@example.com", displayName: "Late" } });
    await waitForText(cell(page, "late@example.com", "display_name"), "Late", LIVE_MS);

    await page.getByRole("button", { name: "Apply" }).click();
    await waitForText(page.getByTestId("total"), "2 users");
    expect(await page.locator(".notice.error").count()).toBe(0);
  });

  it("turns away a user who is not an administrator, saying why", async () => {
    let token = "";
    const other = clients(server.url, "connect-h1", () => token);
    token = (await other.auth.login(ADMIN)).tokens?.accessToken ?? "";
    const who = { email: "plain@example.com", password: "plain-password-1" };
    await other.users.createUser({ user: { email: who.email, displayName: "Plain" }, password: who.password });
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Email").fill(who.email);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("This console is for administrators").waitFor();
  });
});
