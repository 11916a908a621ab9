/**
 * The Connect protocol: unary calls carry a bare message (proto or JSON) and report errors as a JSON body
 * with an HTTP status; streams carry envelopes and end with an end-stream envelope holding the error and
 * trailers as JSON, under HTTP 200.
 */
import type { IncomingHttpHeaders } from "node:http";
import { toBinary, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFromJson,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { normalise } from "../../rpc/wire-error.ts";
import { END_STREAM, frame, rewriteEnvelopes, tooLarge } from "./envelope.ts";
import { identity, single, toObject } from "./headers.ts";
import { decodeBinary, decodeEnveloped, decodeJson } from "./messages.ts";
import type { Protocol, UnaryWire, WireResponse } from "./protocol.ts";

/** The `connect-timeout-ms` deadline. */
function connectTimeout(headers: IncomingHttpHeaders): number | undefined | ConnectError {
  const raw = single(headers, "connect-timeout-ms");
  if (raw === undefined) return undefined;
  if (!/^\d{1,10}$/.test(raw))
    return new ConnectError(`protocol error: invalid connect timeout value: ${raw}`, Code.InvalidArgument);
  return Number(raw);
}

/** A unary error: JSON whatever the request's format, the error's metadata as headers. */
function failure(err: ConnectError, header: Headers): WireResponse {
  const headers = toObject(header, { "content-type": "application/json" });
  err.metadata.forEach((v, k) => {
    headers[k] = v;
  });
  return { status: codeToHttpStatus(err.code), headers, body: errorToJsonBytes(err, {}), trailers: undefined };
}

/** Connect answers an unknown route with 404 (what its clients map to UNIMPLEMENTED), not 501. */
const unimplemented = (err: ConnectError): WireResponse => ({ ...failure(err, new Headers()), status: 404 });

async function* once(bytes: Uint8Array) {
  yield bytes;
}

/** An error body connect-node wrote for a unary call, normalised (the body is one JSON error, buffered). */
async function normaliseUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (res.status === 200 || !res.body) return res;
  const chunks: Uint8Array[] = [];
  for await (const c of res.body) chunks.push(c);
  const bytes = new Uint8Array(Buffer.concat(chunks));
  let fixed: ConnectError | undefined;
  try {
    fixed = normalise(errorFromJsonBytes(bytes, undefined, new ConnectError("unknown", Code.Unknown)));
  } catch {
    fixed = undefined;
  }
  if (!fixed) return { ...res, body: once(bytes) };
  res.header?.delete("content-length");
  return { ...res, status: codeToHttpStatus(fixed.code), body: once(errorToJsonBytes(fixed, {})) };
}

function connectUnary(json: boolean): Protocol {
  const contentType = json ? "application/json" : "application/proto";
  const unary: UnaryWire = {
    decode(desc, body, max) {
      if (body.length > max) return tooLarge(body.length, max);
      return json ? decodeJson(desc, body) : decodeBinary(desc, body);
    },
    success(desc, message, header, trailer) {
      const body = json ? Buffer.from(JSON.stringify(toJson(desc, message))) : toBinary(desc, message);
      return {
        status: 200,
        // Unary trailers travel as headers with a prefix.
        headers: toObject(trailer, toObject(header, { "content-type": contentType }), "trailer-"),
        body,
        trailers: undefined,
      };
    },
    failure,
  };
  return {
    name: "connect",
    contentTypes: json ? ["application/json", "application/json; charset=utf-8"] : ["application/proto"],
    plain: (headers) => identity(single(headers, "content-encoding")),
    enveloped: () => false,
    timeout: connectTimeout,
    unary,
    stream: undefined,
    unimplemented,
    normaliseErrors: normaliseUnary,
  };
}

export const connectProto = connectUnary(false);
/** Also what any request that names no other protocol is answered in. */
export const connectJson = connectUnary(true);

/** Connect streaming, binary. */
export const connectStream: Protocol = {
  name: "connect",
  contentTypes: ["application/connect+proto"],
  plain: (headers) => identity(single(headers, "connect-content-encoding")),
  enveloped: () => true,
  timeout: connectTimeout,
  unary: undefined,
  stream: {
    contentType: "application/connect+proto",
    decode: decodeEnveloped,
    httpTrailers: false,
    end(err, trailer) {
      const json = JSON.stringify(endStreamToJson(trailer, err, {}));
      return { body: frame(END_STREAM, Buffer.from(json)) };
    },
  },
  unimplemented,
  normaliseErrors(res) {
    if (!res.body) return res;
    return {
      ...res,
      body: rewriteEnvelopes(res.body, END_STREAM, (payload) => {
        const end = endStreamFromJson(payload);
        const fixed = end.error && normalise(end.error);
        return fixed ? Buffer.from(JSON.stringify(endStreamToJson(end.metadata, fixed, {}))) : undefined;
      }),
    };
  },
};
