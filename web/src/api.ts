/**
 * Typed clients of the services over the transport the settings choose. One transport per settings value,
 * so switching protocol is just building a new Api; the session's interceptors ride along.
 */
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import type { Settings } from "./settings.ts";

/** The clients the console uses. */
export interface Api {
  readonly users: Client<typeof UserService>;
  readonly auth: Client<typeof AuthService>;
  readonly webhooks: Client<typeof WebhookService>;
}

/** Sends the current access token, read at every call so a refreshed token is used at once. */
function bearer(accessToken: () => string | undefined): Interceptor {
  return (next) => (req) => {
    const token = accessToken();
    if (token) req.header.set("Authorization", `Bearer ${token}`);
    return next(req);
  };
}

function transportFor(settings: Settings, interceptors: Interceptor[]): Transport {
  const baseUrl = settings.apiBaseUrl;
  // gRPC-web is binary only; Connect uses JSON, which is what a person reads in the browser's network tab.
  return settings.transport === "connect"
    ? createConnectTransport({ baseUrl, interceptors })
    : createGrpcWebTransport({ baseUrl, interceptors });
}

/**
 * Clients for `settings`. `outer` interceptors wrap the call (the session's retry after a refresh), and
 * the bearer token is added innermost so a retried call carries the new token.
 */
export function createApi(settings: Settings, accessToken: () => string | undefined, outer: Interceptor[] = []): Api {
  const transport = transportFor(settings, [...outer, bearer(accessToken)]);
  return {
    users: createClient(UserService, transport),
    auth: createClient(AuthService, transport),
    webhooks: createClient(WebhookService, transport),
  };
}
