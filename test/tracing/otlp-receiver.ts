/**
 * A tiny OTLP/HTTP receiver: an HTTP server on port 0 that accepts `POST /v1/traces` in protobuf, as a
 * collector would, and decodes the spans. Only the fields the tests read are decoded (with the wire reader
 * of @bufbuild/protobuf), from opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

/** A received span; ids are lower-case hex, as in a `traceparent` header. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** 1 internal, 2 server, 3 client (OTLP's SpanKind). */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  /** 0 unset, 1 ok, 2 error (OTLP's StatusCode). */
  statusCode: number;
  scope: string;
  /** Attributes of the resource that sent the span (service.name...). */
  resource: Record<string, string | number | boolean>;
}

/** A running receiver. */
export interface OtlpReceiver {
  /** Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Content types of the requests received. */
  readonly contentTypes: string[];
  close(): Promise<void>;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Reads the fields of one message, calling `field` for each (which must consume the value or return false). */
function fields(bytes: Uint8Array, field: (no: number, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (!field(no, r)) r.skip(type as WireType, no);
  }
}

/** Every value of field `no` (a repeated field, or the last one wins for a singular one). */
function all<T>(bytes: Uint8Array, no: number, read: (r: BinaryReader) => T): T[] {
  const values: T[] = [];
  fields(bytes, (n, r) => {
    if (n !== no) return false;
    values.push(read(r));
    return true;
  });
  return values;
}

function anyValue(bytes: Uint8Array): string | number | boolean {
  let value: string | number | boolean = "";
  fields(bytes, (no, r) => {
    if (no === 1) value = r.string();
    else if (no === 2) value = r.bool();
    else if (no === 3) value = Number(r.int64());
    else if (no === 4) value = r.double();
    else return false;
    return true;
  });
  return value;
}

/** A repeated KeyValue field as a record. */
function attributes(bytes: Uint8Array, no: number): Record<string, string | number | boolean> {
  const pairs = all(bytes, no, (r) => r.bytes()).map((kv) => {
    const key = all(kv, 1, (r) => r.string()).at(-1) ?? "";
    const value = all(kv, 2, (r) => anyValue(r.bytes())).at(-1) ?? "";
    return [key, value] as const;
  });
  return Object.fromEntries(pairs);
}

function span(bytes: Uint8Array, scope: string, resource: ReceivedSpan["resource"]): ReceivedSpan {
  const id = (no: number) => hex(all(bytes, no, (r) => r.bytes()).at(-1) ?? new Uint8Array());
  const status = all(bytes, 15, (r) => r.bytes()).at(-1);
  return {
    traceId: id(1),
    spanId: id(2),
    parentSpanId: id(4),
    name: all(bytes, 5, (r) => r.string()).at(-1) ?? "",
    kind: all(bytes, 6, (r) => r.int32()).at(-1) ?? 0,
    attributes: attributes(bytes, 9),
    statusCode: status ? (all(status, 3, (r) => r.int32()).at(-1) ?? 0) : 0,
    scope,
    resource,
  };
}

/** Decodes an ExportTraceServiceRequest into its spans. */
export function decodeTraces(body: Uint8Array): ReceivedSpan[] {
  return all(body, 1, (r) => r.bytes()).flatMap((resourceSpans) => {
    const resourceBytes = all(resourceSpans, 1, (r) => r.bytes()).at(-1);
    const resource = resourceBytes ? attributes(resourceBytes, 1) : {};
    return all(resourceSpans, 2, (r) => r.bytes()).flatMap((scopeSpans) => {
      const scopeBytes = all(scopeSpans, 1, (r) => r.bytes()).at(-1);
      const scope = scopeBytes ? (all(scopeBytes, 1, (r) => r.string()).at(-1) ?? "") : "";
      return all(scopeSpans, 2, (r) => r.bytes()).map((b) => span(b, scope, resource));
    });
  });
}

/** Starts a receiver on 127.0.0.1, port 0. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    contentTypes.push(req.headers["content-type"] ?? "");
    spans.push(...decodeTraces(Buffer.concat(chunks)));
    // An empty ExportTraceServiceResponse: everything accepted.
    res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    contentTypes,
    close: () => new Promise((done) => server.close(() => done())),
  };
}
