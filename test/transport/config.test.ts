/**
 * Start-up with a bad configuration value, as an operator sees it: the server bundle (`npm start`) exits non-zero
 * with one line on stderr naming the variable, and no stack trace. Runs in an empty directory so no
 * `.env` file interferes; the database URL points nowhere, so nothing can start by accident.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SERVER_ENTRY } from "../../scripts/ensure-built.ts";
import { JWT_SECRET } from "../helpers/server.ts";

const main = SERVER_ENTRY;
const cwd = mkdtempSync(join(tmpdir(), "config-test-"));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

const base: Record<string, string> = {
  PATH: process.env.PATH ?? "",
  HOME: cwd,
  DATABASE_URL: "postgres://nobody:nothing@127.0.0.1:1/none",
  JWT_SECRET,
  PORT: "0",
  DATA_DIR: join(cwd, "data"),
};

function start(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      [main],
      { cwd, env: { ...base, ...env }, timeout: 20_000 },
      (_err, stdout, stderr) => {
        done({ code: child.exitCode, stdout, stderr });
      },
    );
  });
}

describe("a bad configuration value", () => {
  it.concurrent.each([
    { variable: "PORT", value: "http" },
    { variable: "JWT_SECRET", value: "too-short" },
    { variable: "ACCESS_TOKEN_TTL", value: "fifteen minutes" },
    { variable: "H2_MAX_CONCURRENT_STREAMS", value: "0" },
    { variable: "HEADERS_TIMEOUT", value: "soon" },
    { variable: "IDLE_TIMEOUT", value: "0s" },
    { variable: "MAX_CONNECTIONS", value: "-1" },
  ])(
    "$variable=$value stops start-up with one line naming it, non-zero exit, no stack trace",
    async ({ variable, value }) => {
      const { code, stderr } = await start({ [variable]: value });
      expect(code).not.toBe(0);
      expect(code).not.toBeNull();
      const lines = stderr.split("\n").filter((l) => l.trim() !== "");
      expect(lines, stderr).toHaveLength(1);
      expect(lines[0]).toContain(variable);
      expect(stderr).not.toMatch(/^\s+at /m);
      expect(stderr).not.toMatch(/Error:|node:internal/);
    },
  );
});
