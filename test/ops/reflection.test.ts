/**
 * Server reflection streams, v1 and v1alpha, spoken directly: what each request kind answers, errors as
 * ErrorResponse, and each file sent once per stream.
 */
import { type DescService, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type TransportName, transport } from "../helpers/clients.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

/** A request of either version; both share the shape. */
type Request = MessageInitShape<typeof v1.ServerReflectionRequestSchema>["messageRequest"];

/** One bidi stream: sends the requests in order and returns the answers, files decoded to their names. */
async function reflect(service: DescService, name: TransportName, requests: Request[]) {
  const client = createClient(service as typeof v1.ServerReflection, transport(server.url, name));
  const answers = [];
  async function* send() {
    for (const messageRequest of requests) yield { host: "example", messageRequest };
  }
  for await (const res of client.serverReflectionInfo(send())) {
    expect(res.validHost).toBe("example");
    expect(res.originalRequest?.messageRequest).toMatchObject(requests[answers.length] ?? {});
    const r = res.messageResponse;
    if (r.case === "fileDescriptorResponse") {
      answers.push({ files: r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) });
    } else if (r.case === "listServicesResponse") {
      answers.push({ services: r.value.service.map((s) => s.name) });
    } else if (r.case === "allExtensionNumbersResponse") {
      answers.push({ base: r.value.baseTypeName, numbers: r.value.extensionNumber });
    } else if (r.case === "errorResponse") {
      answers.push({ error: r.value.errorCode, message: r.value.errorMessage });
    }
  }
  return answers;
}

const fileOf = (symbol: string): Request => ({ case: "fileContainingSymbol", value: symbol });

describe.each([
  ["v1", v1.ServerReflection, "grpc"],
  ["v1alpha", v1alpha.ServerReflection, "grpc"],
  ["v1 over Connect", v1.ServerReflection, "connect-h2"],
] as const)("reflection %s", (_name, service, protocol) => {
  it("lists every service served", async () => {
    const [answer] = await reflect(service, protocol, [{ case: "listServices", value: "" }]);
    expect(answer).toEqual({
      services: [
        "user.v1.UserService",
        "auth.v1.AuthService",
        "events.v1.WebhookService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ],
    });
  });

  it("sends a file with its dependencies, and each dependency once per stream", async () => {
    const answers = await reflect(service, protocol, [
      { case: "fileByFilename", value: "user/v1/user_service.proto" },
      fileOf("user.v1.User"),
      { case: "fileByFilename", value: "user/v1/user_service.proto" },
    ]);
    const first = answers[0].files ?? [];
    expect(first[0]).toBe("user/v1/user_service.proto");
    expect(new Set(first)).toEqual(
      new Set([
        "user/v1/user_service.proto",
        "user/v1/user.proto",
        "user/v1/actor.proto",
        "user/v1/api_key.proto",
        "user/v1/session.proto",
        "authz/v1/authz.proto",
        "buf/validate/validate.proto",
        "google/protobuf/descriptor.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/field_mask.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
    expect(first).toHaveLength(new Set(first).size);
    expect(answers[1]).toEqual({ files: ["user/v1/user.proto"] });
    expect(answers[2]).toEqual({ files: ["user/v1/user_service.proto"] });
  });

  it("finds the file of every kind of symbol", async () => {
    const symbols = {
      "auth.v1.AuthService": "auth/v1/auth_service.proto",
      "auth.v1.AuthService.Login": "auth/v1/auth_service.proto",
      "user.v1.GetUserRequest": "user/v1/user_service.proto",
      "user.v1.GetUserRequest.user_id": "user/v1/user_service.proto",
      "user.v1.ImportUsersRequest.credential": "user/v1/user_service.proto",
      "user.v1.User.LabelsEntry": "user/v1/user.proto",
      "user.v1.Role": "user/v1/user.proto",
      "user.v1.ROLE_ADMIN": "user/v1/user.proto",
      "grpc.health.v1.HealthCheckResponse.ServingStatus": "grpc/health/v1/health.proto",
      "grpc.health.v1.HealthCheckResponse.SERVING": "grpc/health/v1/health.proto",
      "authz.v1.access": "authz/v1/authz.proto",
      "google.protobuf.Timestamp": "google/protobuf/timestamp.proto",
      "grpc.reflection.v1alpha.ServerReflection": "grpc/reflection/v1alpha/reflection.proto",
    };
    // A fresh stream per symbol, so each answer starts with the requested file.
    for (const [symbol, file] of Object.entries(symbols)) {
      const [answer] = await reflect(service, protocol, [fileOf(symbol)]);
      expect(answer.files?.[0], symbol).toBe(file);
    }
  });

  it("answers extension requests", async () => {
    const answers = await reflect(service, protocol, [
      {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 51001 },
      },
      { case: "allExtensionNumbersOfType", value: "google.protobuf.FieldOptions" },
      { case: "allExtensionNumbersOfType", value: "user.v1.User" },
    ]);
    expect(answers[0].files?.[0]).toBe("authz/v1/authz.proto");
    expect(answers[1]).toMatchObject({ base: "google.protobuf.FieldOptions" });
    expect([...(answers[1].numbers ?? [])].sort()).toEqual([1159, 1160]);
    expect(answers[2]).toEqual({ base: "user.v1.User", numbers: [] });
  });

  it("answers NOT_FOUND in an ErrorResponse and keeps the stream going", async () => {
    const answers = await reflect(service, protocol, [
      { case: "fileByFilename", value: "nope.proto" },
      fileOf("user.v1.Nope"),
      {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.MethodOptions", extensionNumber: 1 },
      },
      { case: "allExtensionNumbersOfType", value: "user.v1.Nope" },
      { case: undefined },
      { case: "listServices", value: "*" },
    ]);
    expect(answers.slice(0, 4).map((a) => a.error)).toEqual([
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
      Code.NotFound,
    ]);
    expect(answers[4].error).toBe(Code.InvalidArgument);
    expect(answers[5].services).toContain("user.v1.UserService");
  });
});
