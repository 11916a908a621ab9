/**
 * The bootstrap admin (src/users/admin-bootstrap.ts, API.md "Operations"): without ADMIN_PASSWORD, the
 * generated password is written to $DATA_DIR/admin-password with mode 0600 (even over an existing file
 * that was readable by others) and never to the log, which names the file; it logs in. A configured
 * password that is too weak, or a DATA_DIR that cannot hold the file, stops start-up naming ADMIN_PASSWORD.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.ts";
import { clients, failure } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

const dirs: string[] = [];
const servers: TestServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "admin-bootstrap-"));
  dirs.push(dir);
  return dir;
}

/** Starts a server that is expected to fail; returns the error (a server that starts is closed after all). */
async function startFailure(env: Record<string, string>): Promise<unknown> {
  try {
    servers.push(await startTestServer(env));
  } catch (err) {
    return err;
  }
  return undefined;
}

const admins = async (url: string) => (await query(url, "select email from users where role = 'admin'")).length;

describe("without ADMIN_PASSWORD", () => {
  it("writes a generated password to $DATA_DIR/admin-password (0600), logs the file's name and never the password", async () => {
    const dataDir = join(tempDir(), "not-yet-created");
    const server = await startTestServer({ ADMIN_PASSWORD: "", DATA_DIR: dataDir });
    servers.push(server);
    const file = join(dataDir, "admin-password");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const password = readFileSync(file, "utf8").trim();
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(server.logText()).not.toContain(password);
    const announced = server.logs.filter((l) => l.passwordFile === file);
    expect(announced).toHaveLength(1);
    expect(String(announced[0].msg)).toContain(file);
    const res = await clients(server.url, "grpc").auth.login({ email: ADMIN.email, password });
    expect(res.user?.email).toBe(ADMIN.email);
  });

  it("replaces a file left by an earlier start with mode 0600, and leaves it alone once an admin exists", async () => {
    const dataDir = tempDir();
    const file = join(dataDir, "admin-password");
    writeFileSync(file, "stale\n", { mode: 0o644 });
    const databaseUrl = await createTestDatabase();
    const first = await startTestServer({ ADMIN_PASSWORD: "", DATA_DIR: dataDir, DATABASE_URL: databaseUrl });
    servers.push(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const password = readFileSync(file, "utf8").trim();
    expect(password).not.toBe("stale");
    // A second replica (or a restart) finds the admin: no new password, the file untouched.
    const second = await startTestServer({ ADMIN_PASSWORD: "", DATA_DIR: dataDir, DATABASE_URL: databaseUrl });
    servers.push(second);
    expect(readFileSync(file, "utf8").trim()).toBe(password);
    expect(second.logs.some((l) => "passwordFile" in l)).toBe(false);
    expect(await admins(databaseUrl)).toBe(1);
  });
});

describe("the server bundle, as `npm start` runs it", () => {
  afterAll(killProcesses);

  it("writes the file and prints no password; it also finds the common-password list at run time", async () => {
    const dataDir = tempDir();
    const p = await startProcess({ ADMIN_PASSWORD: "", DATA_DIR: dataDir, DATABASE_URL: await createTestDatabase() });
    const password = readFileSync(join(dataDir, "admin-password"), "utf8").trim();
    const auth = clients(p.url, "grpc").auth;
    expect((await auth.login({ email: ADMIN.email, password })).user?.email).toBe(ADMIN.email);
    const f = await failure(auth.signUp({ email: "common@example.com", password: "password123", displayName: "C" }));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "WEAK_PASSWORD"]);
    p.child.kill("SIGTERM");
    await p.exited;
    expect(p.output()).toContain(join(dataDir, "admin-password"));
    expect(p.output()).not.toContain(password);
  });
});

describe("start-up stops, naming ADMIN_PASSWORD, and creates no admin", () => {
  it("when the configured password is one of the most common, or the admin's email", async () => {
    for (const password of ["password123", ADMIN.email.toUpperCase()]) {
      const databaseUrl = await createTestDatabase();
      const err = await startFailure({ ADMIN_PASSWORD: password, DATABASE_URL: databaseUrl });
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe("ADMIN_PASSWORD");
      expect((err as Error).message).not.toContain(password);
      expect(await admins(databaseUrl)).toBe(0);
    }
  });

  it("when there is no password and DATA_DIR cannot hold the generated one", async () => {
    const notADir = join(tempDir(), "a-file");
    writeFileSync(notADir, "");
    const databaseUrl = await createTestDatabase();
    const err = await startFailure({ ADMIN_PASSWORD: "", DATA_DIR: notADir, DATABASE_URL: databaseUrl });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      `ADMIN_PASSWORD: is not set, and ${join(notADir, "admin-password")} cannot be written (EEXIST) to hold a generated one`,
    );
    expect(await admins(databaseUrl)).toBe(0);
  });
});
