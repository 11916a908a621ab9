/**
 * SIGTERM on the real process (the server bundle, as `npm start` runs it): unary calls finish or fail only with UNAVAILABLE after
 * the listener closed, open watchers end with UNAVAILABLE after SHUTDOWN_GRACE, the process exits 0 within
 * the grace period plus a second, and (embedded mode) its PostgreSQL is gone too.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { status as grpcStatus } from "@grpc/grpc-js";
import { afterEach, expect, it } from "vitest";
import { GetUserRequestSchema, GetUserResponseSchema, UserService } from "../../gen/user/v1/user_service_pb.js";
import { SERVER_ENTRY } from "../../scripts/ensure-built.ts";
import { clients, grpcJsClient, grpcJsUnary, type TransportName } from "../helpers/clients.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { ADMIN, JWT_SECRET } from "../helpers/server.ts";

afterEach(killProcesses);

it("drains unary calls and ends watchers with UNAVAILABLE on SIGTERM, exit 0", async () => {
  const { child, url, exited } = await startProcess({ DATABASE_URL: await createTestDatabase(), SHUTDOWN_GRACE: "2s" });
  const token = (await clients(url, "grpc").auth.login(ADMIN)).tokens?.accessToken ?? "";
  const me = (await clients(url, "grpc", () => token).auth.getCurrentUser({})).user?.id ?? "";

  const watchers = (["grpc", "connect-h2", "grpc-web-h2"] as TransportName[]).map(async (name) => {
    try {
      for await (const _ of clients(url, name, () => token).users.watchUsers({})) {
        // events are not the point here
      }
      return "ended without error";
    } catch (err) {
      return ConnectError.from(err).code;
    }
  });
  // Unary load from grpc-js, the client backends use. (A stream opened just before the GOAWAY arrives is
  // refused with REFUSED_STREAM, which grpc-js reports as UNAVAILABLE as the gRPC spec says; connect-node's
  // client reports it as INTERNAL, a client-side mapping.)
  let stop = false;
  const unaryCodes: number[] = [];
  const grpc = grpcJsClient(Number(new URL(url).port));
  const load = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const { error } = await grpcJsUnary(
        grpc,
        UserService,
        "GetUser",
        GetUserRequestSchema,
        GetUserResponseSchema,
        { userId: me },
        token,
      );
      if (error) {
        unaryCodes.push(error.code);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  const signalled = Date.now();
  child.kill("SIGTERM");
  const code = await exited;
  const took = Date.now() - signalled;
  stop = true;
  await Promise.all(load);

  expect(code).toBe(0);
  expect(took).toBeLessThan(2000 + 1000 + 500);
  expect(await Promise.all(watchers)).toEqual([Code.Unavailable, Code.Unavailable, Code.Unavailable]);
  grpc.close();
  expect([...new Set(unaryCodes)]).toEqual(unaryCodes.length ? [grpcStatus.UNAVAILABLE] : []);
}, 60_000);

it("stops its embedded PostgreSQL on SIGTERM (no orphan process)", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "user-service-embedded-"));
  try {
    const { child, url, exited } = await startProcess({ DATA_DIR: dataDir, SHUTDOWN_GRACE: "1s" });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const pidFile = join(dataDir, "postgres", "postmaster.pid");
    const pgPid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    expect(existsSync(`/proc/${pgPid}`)).toBe(true);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(existsSync(`/proc/${pgPid}`)).toBe(false);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);

it("fails start-up on a port in use with one line, leaving no embedded PostgreSQL behind", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "user-service-busy-port-"));
  const blocker = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => blocker.once("listening", r));
  try {
    const port = (blocker.address() as AddressInfo).port;
    const child = spawn(process.execPath, [SERVER_ENTRY], {
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dataDir, JWT_SECRET },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((done) => child.once("exit", done));
    expect(code).not.toBe(0);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/EADDRINUSE/);
    const pidFile = join(dataDir, "postgres", "postmaster.pid");
    expect(existsSync(pidFile)).toBe(false);
  } finally {
    blocker.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 60_000);
