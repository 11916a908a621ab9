/**
 * Regenerates docs/console.png, the README's picture of the console with data:
 * `node test/browser/console-screenshot.ts`. Starts the real service on a throwaway embedded database,
 * seeds a few users, makes some changes from a second client while the page is open (so the live panel
 * has something to show), and photographs the page in Chromium. Not a test: nothing is asserted.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { ensureWebBuilt } from "../../scripts/ensure-built.ts";
import { startApp } from "../../src/app/start-app.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { clients } from "../helpers/clients.ts";
import { ADMIN, JWT_SECRET } from "../helpers/server.ts";
import { launchChromium } from "./chromium.ts";
import { signIn, waitForText } from "./console-page.ts";

const people = [
  ["ada@example.com", "Ada Lovelace", Role.ADMIN, { team: "engines", tier: "gold" }],
  ["grace@example.com", "Grace Hopper", Role.USER, { team: "compilers" }],
  ["alan@example.com", "Alan Turing", Role.USER, { team: "crypto", oncall: "yes" }],
  ["margaret@example.com", "Margaret Hamilton", Role.ADMIN, { team: "apollo" }],
  ["edsger@example.com", "Edsger Dijkstra", Role.USER, { team: "algorithms" }],
  ["barbara@example.com", "Barbara Liskov", Role.USER, { team: "languages", tier: "gold" }],
  ["ken@example.com", "Ken Thompson", Role.USER, {}],
] as const;

const dataDir = mkdtempSync(join(tmpdir(), "console-screenshot-"));
await ensureWebBuilt();
const app = await startApp(
  loadConfig({
    PORT: "0",
    DATA_DIR: dataDir,
    JWT_SECRET,
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: "silent",
  }),
  { log: createLogger("silent") },
);
const browser = await launchChromium();
try {
  let token = "";
  const other = clients(app.url, "connect-h1", () => token);
  token = (await other.auth.login(ADMIN)).tokens?.accessToken ?? "";
  const ids = new Map<string, string>();
  for (const [email, displayName, role, labels] of people) {
    const { user } = await other.users.createUser({ user: { email, displayName, role, labels } });
    ids.set(email, user?.id ?? "");
  }

  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 720 });
  await page.goto(app.url);
  await signIn(page);
  await waitForText(page.getByTestId("total"), `${people.length + 1} users`);

  // Changes made elsewhere while the page is open: they show in the table and the live panel.
  await other.users.updateUser({
    user: { id: ids.get("ken@example.com"), state: UserState.SUSPENDED },
    updateMask: { paths: ["state"] },
  });
  await other.users.updateUser({
    user: { id: ids.get("grace@example.com"), displayName: "Rear Admiral Grace Hopper" },
    updateMask: { paths: ["display_name"] },
  });
  await other.users.createUser({
    user: { email: "linus@example.com", displayName: "Linus Torvalds", labels: { team: "kernel" } },
  });
  await page.locator('tbody tr[data-email="linus@example.com"]').waitFor();
  // Let the change highlight fade, so the picture shows the table as it rests.
  await new Promise((r) => setTimeout(r, 1800));

  const out = resolve(import.meta.dirname, "../../docs/console.png");
  mkdirSync(resolve(out, ".."), { recursive: true });
  await page.screenshot({ path: out });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
}
