/** What a person does on the console, in the words of the page (labels, buttons), for the browser tests. */
import type { Locator, Page } from "playwright-core";
import { ADMIN } from "../helpers/server.ts";

/** Signs in (as the bootstrap admin unless told otherwise) and waits for the users page. */
export async function signIn(page: Page, who: { email: string; password: string } = ADMIN): Promise<void> {
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("whoami").waitFor();
}

/** The table row of a user, by email. */
export function row(page: Page, email: string): Locator {
  return page.locator(`tbody tr[data-email="${email}"]`);
}

/** One cell of a user's row (`display_name`, `state`, ...). */
export function cell(page: Page, email: string, column: string): Locator {
  return row(page, email).locator(`[data-col="${column}"]`);
}

/** The open create/edit dialog. */
export function dialog(page: Page): Locator {
  return page.getByRole("dialog");
}

/** Fills the fields of the open dialog that are given. */
export async function fillUserForm(
  page: Page,
  values: { email?: string; displayName?: string; role?: "User" | "Admin"; labels?: string; password?: string },
): Promise<void> {
  const d = dialog(page);
  if (values.email !== undefined) await d.getByLabel("Email").fill(values.email);
  if (values.displayName !== undefined) await d.getByLabel("Display name").fill(values.displayName);
  if (values.role !== undefined) await d.getByLabel("Role").selectOption({ label: values.role });
  if (values.labels !== undefined) await d.getByLabel("Labels").fill(values.labels);
  if (values.password !== undefined) await d.getByLabel("Password").fill(values.password);
}

/** The error shown under a field of the open dialog. */
export function fieldError(page: Page, field: string): Locator {
  return dialog(page).locator(`[data-error-for="${field}"]`);
}

/** Waits until `locator` reads exactly `text` (or throws after `timeoutMs`, saying what it read); returns how long it took. */
export async function waitForText(locator: Locator, text: string, timeoutMs = 5000): Promise<number> {
  const start = Date.now();
  const exactly = new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`);
  try {
    await locator.filter({ hasText: exactly }).first().waitFor({ timeout: timeoutMs });
  } catch {
    const now = await locator
      .first()
      .textContent({ timeout: 100 })
      .catch(() => "(nothing)");
    throw new Error(`expected "${text}" but it reads "${now?.trim()}" after ${timeoutMs} ms`);
  }
  return Date.now() - start;
}

/**
 * How soon a change made elsewhere must show in the live view. The product target is one second (typical:
 * well under 300 ms); the suite allows 2.5 s because CI runs every test file in parallel on two cores.
 */
export const LIVE_MS = 2500;
