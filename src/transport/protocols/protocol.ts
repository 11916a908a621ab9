/**
 * What differs between gRPC, gRPC-web and Connect, behind one interface. The drivers (../drivers/) run
 * calls the same way whatever the protocol and ask it how to read the deadline and the request, and how
 * to write the answer. Each protocol's rules live in its own file, as in connect-go and connect-es;
 * detect.ts tells them apart.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

export type ProtocolName = "grpc" | "grpc-web" | "connect";

/** A response ready for the wire: HTTP status, headers, body, and HTTP trailers (gRPC only). */
export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  /** Undefined: the headers end the response (a gRPC trailers-only response). */
  body: Uint8Array | undefined;
  trailers: Record<string, string> | undefined;
}

/** How a unary call's request is read and its answer written. */
export interface UnaryWire {
  /** The request message from the whole body. */
  decode<I extends DescMessage>(desc: I, body: Buffer, maxBytes: number): MessageShape<I> | ConnectError;
  /** The wire form of a result. `header`/`trailer` are what interceptors and the handler set. */
  success<O extends DescMessage>(desc: O, message: MessageShape<O>, header: Headers, trailer: Headers): WireResponse;
  failure(err: ConnectError, header: Headers): WireResponse;
}

/** How a server stream is read, started and ended (its messages are DATA envelopes in every protocol). */
export interface StreamWire {
  /** The request message from the whole body. */
  decode<I extends DescMessage>(desc: I, body: Buffer, maxBytes: number): MessageShape<I> | ConnectError;
  readonly contentType: string;
  /**
   * The stream ends with HTTP trailers (gRPC): its headers ask for them, and an error before the first
   * message is a trailers-only response (the status in the one HEADERS frame).
   */
  readonly httpTrailers: boolean;
  /** What ends the stream: a last body chunk and/or HTTP trailers. */
  end(err: ConnectError | undefined, trailer: Headers): { body?: Uint8Array; trailers?: Record<string, string> };
}

/** One protocol, or one variant of it with its own content types (Connect unary JSON, proto, streaming). */
export interface Protocol {
  readonly name: ProtocolName;
  /** The content types the own paths serve; other content types of the protocol go to connect-node. */
  readonly contentTypes: readonly string[];
  /** Whether the own paths can serve a request of this protocol: no content coding, gRPC over HTTP/2 only. */
  plain(headers: IncomingHttpHeaders, h2: boolean): boolean;
  /** Whether a request body of this content type is a sequence of envelopes (gRPC-web text is base64). */
  enveloped(contentType: string): boolean;
  /** The call's deadline in ms from now, or the error for a malformed timeout header. */
  timeout(headers: IncomingHttpHeaders): number | undefined | ConnectError;
  /** Unary calls; undefined for a variant that only carries streams. */
  readonly unary: UnaryWire | undefined;
  /** Server streams; undefined for a variant that only carries unary calls. */
  readonly stream: StreamWire | undefined;
  /** The answer to a call of a method this server does not have. */
  unimplemented(err: ConnectError): WireResponse;
  /**
   * connect-node's response in this protocol with the errors it raised before any interceptor ran made
   * to meet the contract (an ErrorInfo on every error; undecodable input is INVALID_ARGUMENT). Responses
   * without such an error pass through byte for byte.
   */
  normaliseErrors(res: UniversalServerResponse): UniversalServerResponse | Promise<UniversalServerResponse>;
}

export type UnaryProtocol = Protocol & { readonly unary: UnaryWire };
export type StreamProtocol = Protocol & { readonly stream: StreamWire };
