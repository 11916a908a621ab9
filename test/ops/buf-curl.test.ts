/**
 * The real `buf curl` finds the schema by server reflection alone (no proto files, no --schema) over each
 * protocol. These are the command lines the README shows.
 */
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

const buf = resolve("node_modules/.bin/buf");
const run = promisify(execFile);

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

const protocols: Record<string, string[]> = {
  "grpc (h2c)": ["--protocol", "grpc", "--http2-prior-knowledge"],
  "grpcweb (HTTP/1.1)": ["--protocol", "grpcweb"],
  "grpcweb (h2c)": ["--protocol", "grpcweb", "--http2-prior-knowledge"],
  "connect (HTTP/1.1)": ["--protocol", "connect"],
  "connect (h2c)": ["--protocol", "connect", "--http2-prior-knowledge"],
};

async function curl(args: string[]): Promise<string> {
  // Run outside the repository, so no local buf module can stand in for reflection.
  const { stdout } = await run(buf, ["curl", ...args], { cwd: tmpdir(), timeout: 20_000 });
  return stdout;
}

describe.concurrent.each(Object.entries(protocols))("buf curl %s", (_name, flags) => {
  it("lists services", async () => {
    const out = (await curl([...flags, "--list-services", server.url])).trim().split("\n");
    expect(out).toEqual(
      expect.arrayContaining([
        "auth.v1.AuthService",
        "events.v1.WebhookService",
        "user.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
  });

  it("lists methods", async () => {
    const out = (await curl([...flags, "--list-methods", server.url])).trim().split("\n");
    expect(out).toEqual(
      expect.arrayContaining([
        "auth.v1.AuthService/Login",
        "user.v1.UserService/GetUser",
        "grpc.health.v1.Health/Check",
      ]),
    );
  });

  it("logs in and reads a user, schema from reflection", async () => {
    const login = JSON.parse(
      await curl([...flags, "-d", JSON.stringify(ADMIN), `${server.url}/auth.v1.AuthService/Login`]),
    );
    expect(login.user.email).toBe(ADMIN.email);
    const got = JSON.parse(
      await curl([
        ...flags,
        "-H",
        `Authorization: Bearer ${login.tokens.accessToken}`,
        "-d",
        JSON.stringify({ userId: login.user.id }),
        `${server.url}/user.v1.UserService/GetUser`,
      ]),
    );
    expect(got.user).toMatchObject({ id: login.user.id, email: ADMIN.email, role: "ROLE_ADMIN" });
  });

  it("checks health", async () => {
    expect(JSON.parse(await curl([...flags, `${server.url}/grpc.health.v1.Health/Check`]))).toEqual({
      status: "SERVING",
    });
  });
});

it("reads the schema through reflection v1alpha as well", async () => {
  const flags = ["--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", "grpc-v1alpha"];
  expect(await curl([...flags, "--list-methods", server.url])).toContain("user.v1.UserService/GetUser");
  const login = JSON.parse(
    await curl([...flags, "-d", JSON.stringify(ADMIN), `${server.url}/auth.v1.AuthService/Login`]),
  );
  expect(login.tokens.tokenType).toBe("Bearer");
});
