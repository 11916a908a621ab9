/**
 * Real clients for every protocol the service speaks: connect-node transports (Connect over HTTP/1.1 and
 * HTTP/2, gRPC, gRPC-web) and @grpc/grpc-js, the client most backends use.
 */
import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";

/** The transports under test, by name. */
export type TransportName = "grpc" | "connect-h1" | "connect-h2" | "connect-json-h1" | "grpc-web-h1" | "grpc-web-h2";

/** Adds `authorization: Bearer <token>` when a token is set. */
function bearer(token: () => string | undefined): Interceptor {
  return (next) => (req) => {
    const t = token();
    if (t) req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
}

/** Sets fixed request headers (a user agent, X-Forwarded-For). */
function withHeaders(headers: Record<string, string>): Interceptor {
  return (next) => (req) => {
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
}

/** A connect-node transport of the given kind; `headers` are sent with every call. */
export function transport(
  baseUrl: string,
  name: TransportName,
  token: () => string | undefined = () => undefined,
  headers: Record<string, string> = {},
): Transport {
  const interceptors = [bearer(token), withHeaders(headers)];
  switch (name) {
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors });
    case "connect-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
    case "connect-json-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "connect-h2":
      return createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors });
    case "grpc-web-h1":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
    case "grpc-web-h2":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2", interceptors });
  }
}

/** Typed clients of the services over one transport. */
export interface Clients {
  users: Client<typeof UserService>;
  auth: Client<typeof AuthService>;
  webhooks: Client<typeof WebhookService>;
}

/** Clients over the given transport; `token` is read at every call; `headers` are sent with every call. */
export function clients(
  baseUrl: string,
  name: TransportName,
  token: () => string | undefined = () => undefined,
  headers: Record<string, string> = {},
): Clients {
  const t = transport(baseUrl, name, token, headers);
  return {
    users: createClient(UserService, t),
    auth: createClient(AuthService, t),
    webhooks: createClient(WebhookService, t),
  };
}

/** The ErrorInfo reason of an error (throws if there is none, which is itself a contract breach). */
export function reasonOf(err: unknown): string {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  if (!info) throw new Error(`error without ErrorInfo: [${Code[e.code]}] ${e.message}`);
  return info.reason;
}

/** The field paths of the google.rpc.BadRequest field violations an error carries (empty when none). */
export function violationsOf(err: unknown): string[] {
  return ConnectError.from(err)
    .findDetails(BadRequestSchema)
    .flatMap((b) => b.fieldViolations.map((v) => v.field));
}

/** The ErrorInfo domain of an error (undefined when it has no ErrorInfo). */
export function domainOf(err: unknown): string | undefined {
  return ConnectError.from(err).findDetails(ErrorInfoSchema)[0]?.domain;
}

/** What a failed call answered: status code, ErrorInfo reason and domain, BadRequest field paths. */
export interface Failure {
  code: Code;
  reason: string;
  domain: string | undefined;
  /** Field paths of the BadRequest field violations, in the order sent. */
  violations: string[];
  message: string;
  error: ConnectError;
}

/** Runs `call`, expecting it to fail; returns code, reason and field violations. */
export async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    return {
      code: e.code,
      reason: reasonOf(e),
      domain: domainOf(e),
      violations: violationsOf(e),
      message: e.rawMessage,
      error: e,
    };
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** A unary call made with @grpc/grpc-js, with protobuf-es doing the (de)serialization. */
export function grpcJsUnary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  service: DescService,
  method: string,
  input: I,
  output: O,
  request: MessageInitShape<I>,
  token?: string,
): Promise<{ response?: MessageShape<O>; error?: grpc.ServiceError }> {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return new Promise((done) => {
    client.makeUnaryRequest(
      `/${service.typeName}/${method}`,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      create(input, request) as MessageShape<I>,
      md,
      (error, response) => done(error ? { error } : { response: response as MessageShape<O> }),
    );
  });
}

/** A grpc-js client channel to the server. */
export function grpcJsClient(port: number): grpc.Client {
  return new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}

/** The ErrorInfo reason carried by a grpc-js error (`grpc-status-details-bin`). */
export function grpcJsReason(err: grpc.ServiceError): string | undefined {
  const bin = err.metadata.get("grpc-status-details-bin")[0];
  if (!bin) return undefined;
  const status = fromBinary(StatusSchema, bin as Buffer);
  for (const d of status.details) {
    if (d.typeUrl.endsWith("google.rpc.ErrorInfo")) return fromBinary(ErrorInfoSchema, d.value).reason;
  }
  return undefined;
}
