/**
 * Typed unary calls through @grpc/grpc-js, the client most Node backends use. Failures are turned into
 * ConnectErrors carrying the details of `grpc-status-details-bin`, so the same `failure()` assertions work
 * for grpc-js and for every connect-node transport.
 */
import {
  create,
  type DescMethodUnary,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { type Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { grpcJsClient } from "./clients.ts";

/** A grpc-js channel with typed unary calls. */
export interface GrpcJs {
  /** Calls `method`; rejects with a ConnectError built from the gRPC status and its details. */
  call<M extends DescMethodUnary>(
    method: M,
    request: MessageInitShape<M["input"]>,
    token?: string,
    headers?: Record<string, string>,
  ): Promise<MessageShape<M["output"]>>;
  /** The underlying channel, for raw calls. */
  readonly client: grpc.Client;
  close(): void;
}

/** The ConnectError equivalent of a grpc-js failure, details included (as received on the wire). */
export function fromGrpcJsError(err: grpc.ServiceError): ConnectError {
  const e = new ConnectError(err.details, err.code as number as Code);
  const bin = err.metadata.get("grpc-status-details-bin")[0];
  if (bin) {
    const status = fromBinary(StatusSchema, bin as Buffer);
    for (const d of status.details) {
      e.details.push({ type: d.typeUrl.slice(d.typeUrl.lastIndexOf("/") + 1), value: d.value, debug: undefined });
    }
  }
  return e;
}

/** Opens a grpc-js channel to the server on `port`. */
export function grpcJs(port: number): GrpcJs {
  const client = grpcJsClient(port);
  return {
    client,
    call(method, request, token, headers = {}) {
      const md = new grpc.Metadata();
      if (token) md.set("authorization", `Bearer ${token}`);
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      // grpc-js cannot type the response of a dynamic method; the deserializer below makes it the output message.
      return new Promise((done, fail) => {
        client.makeUnaryRequest(
          `/${method.parent.typeName}/${method.name}`,
          (m: MessageShape<typeof method.input>) => Buffer.from(toBinary(method.input, m)),
          (b: Buffer) => fromBinary(method.output, b),
          create(method.input, request),
          md,
          (error, response) => (error ? fail(fromGrpcJsError(error)) : done(response as never)),
        );
      });
    },
    close: () => client.close(),
  };
}
