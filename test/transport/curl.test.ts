/**
 * Plain `curl` with Connect JSON, as the README tells people to call the service: no generated code, no
 * Connect-Protocol-Version header, JSON in and out (camelCase fields, enums by name), and errors as
 * Connect's JSON error body with the right HTTP status and decodable ErrorInfo/BadRequest details.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { curl } from "../helpers/raw.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/** POSTs JSON with curl; returns the HTTP status and the parsed body. */
async function post(
  path: string,
  body: unknown,
  headers: string[] = [],
): Promise<{ status: number; json: Record<string, unknown> }> {
  const args = ["-sS", "-X", "POST", "-H", "Content-Type: application/json", ...headers.flatMap((h) => ["-H", h])];
  args.push("--data", JSON.stringify(body), "-w", "\n%{http_code}", `${server.url}${path}`);
  const res = await curl(args);
  expect(res.exitCode, res.stderr).toBe(0);
  const cut = res.stdout.lastIndexOf("\n");
  return {
    status: Number(res.stdout.slice(cut + 1)),
    json: JSON.parse(res.stdout.slice(0, cut)) as Record<string, unknown>,
  };
}

interface JsonDetail {
  type: string;
  value: string;
}

function detail<T extends Parameters<typeof fromBinary>[0]>(json: Record<string, unknown>, schema: T) {
  const d = (json.details as JsonDetail[] | undefined)?.find((x) => x.type === schema.typeName);
  return d ? fromBinary(schema, Buffer.from(d.value, "base64")) : undefined;
}

describe("curl with Connect JSON", () => {
  let token = "";
  let adminId = "";

  beforeAll(async () => {
    const { status, json } = await post("/auth.v1.AuthService/Login", ADMIN);
    expect(status).toBe(200);
    const tokens = json.tokens as { accessToken: string; tokenType: string };
    token = tokens.accessToken;
    adminId = (json.user as { id: string }).id;
  });

  it("logs in: 200 with user (enums by name) and tokens (camelCase JSON)", async () => {
    const { status, json } = await post("/auth.v1.AuthService/Login", ADMIN);
    expect(status).toBe(200);
    expect(json.user).toMatchObject({ email: ADMIN.email, role: "ROLE_ADMIN", state: "USER_STATE_ACTIVE" });
    expect(json.tokens).toMatchObject({ tokenType: "Bearer" });
    const tokens = json.tokens as Record<string, string>;
    expect(tokens.accessToken).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(Date.parse(tokens.accessTokenExpireTime)).toBeGreaterThan(Date.now());
  });

  it("reads a user with GetUser and a Bearer token", async () => {
    const { status, json } = await post("/user.v1.UserService/GetUser", { userId: adminId }, [
      `Authorization: Bearer ${token}`,
    ]);
    expect(status).toBe(200);
    expect(json.user).toMatchObject({ id: adminId, email: ADMIN.email, displayName: "Administrator" });
  });

  it("accepts proto field names (snake_case) in the request too", async () => {
    const { status } = await post("/user.v1.UserService/GetUser", { user_id: adminId }, [
      `Authorization: Bearer ${token}`,
    ]);
    expect(status).toBe(200);
  });

  it("answers a bad login with 401 unauthenticated and ErrorInfo INVALID_CREDENTIALS", async () => {
    const { status, json } = await post("/auth.v1.AuthService/Login", {
      email: ADMIN.email,
      password: "not-the-password",
    });
    expect(status).toBe(401);
    expect(json.code).toBe("unauthenticated");
    expect(detail(json, ErrorInfoSchema)?.reason).toBe("INVALID_CREDENTIALS");
  });

  it("answers GetUser without token with 401 and ErrorInfo UNAUTHENTICATED", async () => {
    const { status, json } = await post("/user.v1.UserService/GetUser", { userId: adminId });
    expect(status).toBe(401);
    expect(json.code).toBe("unauthenticated");
    expect(detail(json, ErrorInfoSchema)?.reason).toBe("UNAUTHENTICATED");
  });

  it("answers an invalid id with 400 invalid_argument, ErrorInfo and a BadRequest naming user_id", async () => {
    const { status, json } = await post("/user.v1.UserService/GetUser", { userId: "nope" }, [
      `Authorization: Bearer ${token}`,
    ]);
    expect(status).toBe(400);
    expect(json.code).toBe("invalid_argument");
    expect(typeof json.message).toBe("string");
    expect(detail(json, ErrorInfoSchema)?.reason).toBe("INVALID_ARGUMENT");
    expect(detail(json, BadRequestSchema)?.fieldViolations.map((v) => v.field)).toEqual(["user_id"]);
  });

  it("answers malformed JSON with 400 invalid_argument", async () => {
    const res = await curl([
      "-sS",
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "--data",
      "{not json",
      "-w",
      "\n%{http_code}",
      `${server.url}/auth.v1.AuthService/Login`,
    ]);
    const cut = res.stdout.lastIndexOf("\n");
    expect(Number(res.stdout.slice(cut + 1))).toBe(400);
    const json = JSON.parse(res.stdout.slice(0, cut)) as Record<string, unknown>;
    expect(json.code).toBe("invalid_argument");
    expect(detail(json, ErrorInfoSchema)?.reason).toBe("INVALID_ARGUMENT");
  });
});
