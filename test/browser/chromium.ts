/**
 * Debian's Chromium driven by playwright-core: headless, no sandbox (containers), a fresh profile per
 * launch, and a screenshot in test-results/ for every failed test. Without /usr/bin/chromium the browser
 * tests are skipped with a message, except in CI (CI set), where they must run and so fail instead.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterEach } from "vitest";

/** Where Debian's chromium package puts the browser (.ci/run installs it when missing). */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/** True on a machine without Chromium that is not CI: the browser tests skip themselves. */
export const skipWithoutChromium = !existsSync(CHROMIUM_PATH) && !process.env.CI;
if (skipWithoutChromium) {
  console.warn(
    `browser tests skipped: ${CHROMIUM_PATH} not found (apt-get install -y chromium); with CI set they run and fail instead`,
  );
}

const RESULTS = resolve(import.meta.dirname, "../../test-results");

/** A launched browser with its own profile. */
export interface TestBrowser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium headless with a fresh user-data dir. */
export async function launchChromium(): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "console-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a full-page screenshot to test-results/<prefix>-<test name>.png when a test of this file fails. */
export function screenshotOnFailure(prefix: string, page: () => Page | undefined): void {
  afterEach(async ({ task }) => {
    const p = page();
    if (task.result?.state !== "fail" || !p || p.isClosed()) return;
    mkdirSync(RESULTS, { recursive: true });
    const name = `${prefix}-${task.name}`.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    await p.screenshot({ path: join(RESULTS, `${name}.png`), fullPage: true }).catch(() => {});
  });
}
