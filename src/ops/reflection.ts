/**
 * gRPC server reflection, so `buf curl`, grpcurl and Postman can call the service without its proto files.
 * Both versions are served: v1 is the standard, v1alpha is what many deployed tools still ask for. They
 * share one implementation because their messages are identical apart from the package name.
 */
import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createDescriptorIndex, type DescriptorIndex } from "./descriptor-index.ts";

/** The reflection services themselves (callers make them public and list them). */
export const reflectionServices: readonly DescService[] = [ServerReflectionV1, ServerReflectionV1alpha];

/** A reflection request of either version, as far as answering it goes. */
type ReflectionRequest = {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
};

function error(code: Code, message: string) {
  return { case: "errorResponse" as const, value: { errorCode: code, errorMessage: message } };
}

/**
 * Answers the requests of one stream. A file comes with its dependencies; as real reflection servers do,
 * a dependency already sent on this stream is not sent again (the requested file itself always is).
 */
function createAnswerer(index: DescriptorIndex, encode: (file: DescFile) => Uint8Array) {
  const sent = new Set<string>();
  const withDependencies = (file: DescFile | undefined, what: string) => {
    if (!file) return error(Code.NotFound, `${what} not found`);
    const out: Uint8Array[] = [];
    const queue = [file];
    const visited = new Set<string>();
    for (let f = queue.shift(); f; f = queue.shift()) {
      if (visited.has(f.proto.name)) continue;
      visited.add(f.proto.name);
      if (out.length === 0 || !sent.has(f.proto.name)) out.push(encode(f));
      sent.add(f.proto.name);
      queue.push(...f.dependencies);
    }
    return { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: out } };
  };
  return (req: ReflectionRequest["messageRequest"]) => {
    switch (req.case) {
      case "listServices":
        return { case: "listServicesResponse" as const, value: { service: index.services.map((name) => ({ name })) } };
      case "fileByFilename":
        return withDependencies(index.file(req.value), `file "${req.value}"`);
      case "fileContainingSymbol":
        return withDependencies(index.fileOfSymbol(req.value), `symbol "${req.value}"`);
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = req.value;
        return withDependencies(
          index.fileOfExtension(containingType, extensionNumber),
          `extension ${extensionNumber} of "${containingType}"`,
        );
      }
      case "allExtensionNumbersOfType": {
        const numbers = index.extensionNumbers(req.value);
        if (!numbers) return error(Code.NotFound, `type "${req.value}" not found`);
        return {
          case: "allExtensionNumbersResponse" as const,
          value: { baseTypeName: req.value, extensionNumber: numbers },
        };
      }
      default:
        return error(Code.InvalidArgument, "the request names no reflection method");
    }
  };
}

/**
 * Registers grpc.reflection v1 and v1alpha on the router, describing `services` (with every file they
 * depend on) and the reflection services themselves.
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const index = createDescriptorIndex([...services, ...reflectionServices]);
  const encoded = new Map<string, Uint8Array>();
  const encode = (file: DescFile) => {
    const bytes = encoded.get(file.proto.name) ?? toBinary(FileDescriptorProtoSchema, file.proto);
    encoded.set(file.proto.name, bytes);
    return bytes;
  };
  async function* serverReflectionInfo<R extends ReflectionRequest>(requests: AsyncIterable<R>) {
    const answer = createAnswerer(index, encode);
    for await (const req of requests) {
      yield { validHost: req.host, originalRequest: req, messageResponse: answer(req.messageRequest) };
    }
  }
  router.service(ServerReflectionV1, { serverReflectionInfo });
  router.service(ServerReflectionV1alpha, { serverReflectionInfo });
}
