/**
 * A real client checking answers while the load runs: h2load counts a gRPC error (HTTP 200 with a non-zero
 * grpc-status) as a success, so this client calls GetUser every ~50 ms over the protocol under load (a
 * connect-node transport) and records every call that fails or returns another user than the one asked for.
 */
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { UserService } from "../gen/user/v1/user_service_pb.js";
import type { ProtocolName } from "./protocols.ts";
import { benchUserEmail, benchUserId } from "./seed.ts";

/** What the verifier saw. */
export interface Verification {
  calls: number;
  failures: string[];
}

/** A running verifier. */
export interface Verifier {
  /** Stops after the call in flight; resolves with what was seen. */
  stop(): Promise<Verification>;
}

function transportFor(
  protocol: ProtocolName,
  baseUrl: string,
  sessionManager: Http2SessionManager,
  token: string,
): Transport {
  const interceptors: Interceptor[] = [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    },
  ];
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl, sessionManager, interceptors });
    case "connect-h2":
      return createConnectTransport({ baseUrl, httpVersion: "2", sessionManager, useBinaryFormat: true, interceptors });
    case "connect-h1":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager, interceptors });
  }
}

/** Starts calling GetUser for random users below `bound` until stopped. */
export function startVerifier(protocol: ProtocolName, baseUrl: string, token: string, bound: number): Verifier {
  const sessionManager = new Http2SessionManager(baseUrl);
  const client = createClient(UserService, transportFor(protocol, baseUrl, sessionManager, token));
  const seen: Verification = { calls: 0, failures: [] };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const i = Math.floor(Math.random() * bound);
      const started = performance.now();
      try {
        const { user } = await client.getUser({ userId: benchUserId(i) }, { timeoutMs: 10_000 });
        if (user?.id !== benchUserId(i) || user.email !== benchUserEmail(i)) {
          seen.failures.push(`asked for ${benchUserId(i)}, got ${user?.id} <${user?.email}>`);
        }
      } catch (err) {
        seen.failures.push(`GetUser ${benchUserId(i)} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      seen.calls++;
      await new Promise((r) => setTimeout(r, Math.max(0, 50 - (performance.now() - started))));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      sessionManager.abort();
      return seen;
    },
  };
}
