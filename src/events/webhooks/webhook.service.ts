/**
 * events.v1.WebhookService (admin; the auth interceptor enforces the proto's AUDIENCE_ADMIN, protovalidate
 * the lengths and the UUIDs). What remains here: the URL (absolute http/https, no credentials, a host that
 * resolves to addresses webhooks may reach), the event type names, the cap, the secret, and the errors.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type Webhook,
  type WebhookDelivery,
  WebhookDeliverySchema,
  WebhookSchema,
  type WebhookService,
  WebhookState,
} from "../../../gen/events/v1/webhook_service_pb.js";
import { type FieldViolation, invalidArgument, ServiceError } from "../../rpc/errors.ts";
import { createSignedTokens } from "../../rpc/signed-token.ts";
import { PageTokenError } from "../../users/list/index.ts";
import { isEventType } from "../event-log.ts";
import { AddressRefused, hostOf, resolveHost } from "./address-guard.ts";
import { newWebhookSecret, type SecretBox } from "./secret-box.ts";
import type { DeliveryRecord, WebhookRecord, WebhookRepository } from "./webhook.repository.ts";

/** The most endpoints one service holds. */
export const MAX_WEBHOOKS = 100;

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;

const notFound = (id: string) => new ServiceError("WEBHOOK_NOT_FOUND", `webhook ${id} not found`);

function toProtoWebhook(w: WebhookRecord): Webhook {
  return create(WebhookSchema, {
    id: w.id,
    url: w.url,
    eventTypes: w.eventTypes,
    description: w.description,
    createTime: timestampFromDate(w.createTime),
    state: w.state === "active" ? WebhookState.ACTIVE : WebhookState.DISABLED,
  });
}

function toProtoDelivery(d: DeliveryRecord): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    eventId: d.eventId,
    eventType: d.eventType,
    attempt: d.attempt,
    statusCode: d.statusCode,
    error: d.error,
    time: timestampFromDate(d.time),
    nextAttemptTime: d.nextAttemptTime ? timestampFromDate(d.nextAttemptTime) : undefined,
  });
}

/** Page tokens of ListWebhookDeliveries, bound to the endpoint: the id of the last attempt listed. */
export function createDeliveryPageTokens(key: string) {
  const tokens = createSignedTokens(key, "events.v1.ListWebhookDeliveries page token v1");
  return {
    encode: (webhookId: string, lastId: string) => tokens.seal(webhookId, lastId),
    decode(webhookId: string, token: string): string | null {
      if (token === "") return null;
      const id = tokens.open(webhookId, token);
      if (typeof id !== "string" || !/^[1-9][0-9]{0,18}$/.test(id))
        throw new PageTokenError("not a page token of this webhook's deliveries, or it was modified");
      return id;
    },
  };
}

/** The URL as stored, or the violation: absolute http(s), no credentials, a host webhooks may call. */
async function checkUrl(raw: string, allowPrivate: boolean): Promise<string> {
  const refuse = (description: string) => invalidArgument([{ field: "url", description }]);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse("must be an absolute http or https URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refuse("must be an absolute http or https URL");
  if (url.username !== "" || url.password !== "") throw refuse("must not carry credentials (user:password@)");
  try {
    await resolveHost(hostOf(url), allowPrivate);
  } catch (err) {
    if (err instanceof AddressRefused) throw refuse(err.message);
    throw err;
  }
  return url.href;
}

/** Builds the handlers. */
export function createWebhookService(deps: {
  webhooks: WebhookRepository;
  secrets: SecretBox;
  pageTokens: ReturnType<typeof createDeliveryPageTokens>;
  allowPrivate: boolean;
  max?: number;
}): Partial<ServiceImpl<typeof WebhookService>> {
  const max = deps.max ?? MAX_WEBHOOKS;
  return {
    async createWebhook(req) {
      const unknown = req.eventTypes.filter((t) => !isEventType(t));
      const violations: FieldViolation[] = unknown.map((t) => ({
        field: "event_types",
        description: `unknown event type ${JSON.stringify(t)}`,
      }));
      if (violations.length > 0) throw invalidArgument(violations);
      const url = await checkUrl(req.url, deps.allowPrivate);
      const id = randomUUID();
      const secret = newWebhookSecret();
      const created = await deps.webhooks.create({
        id,
        url,
        eventTypes: req.eventTypes,
        description: req.description,
        secretSealed: deps.secrets.seal(id, secret),
        max,
      });
      if (created === "limit")
        throw new ServiceError(
          "WEBHOOK_LIMIT_REACHED",
          `${max} webhooks exist already, the most allowed: delete one first`,
        );
      return { webhook: toProtoWebhook(created), secret };
    },

    async listWebhooks() {
      return { webhooks: (await deps.webhooks.list()).map(toProtoWebhook) };
    },

    async deleteWebhook(req) {
      if (!(await deps.webhooks.delete(req.webhookId))) throw notFound(req.webhookId);
      return {};
    },

    async listWebhookDeliveries(req) {
      const before = deps.pageTokens.decode(req.webhookId, req.pageToken);
      if (!(await deps.webhooks.exists(req.webhookId))) throw notFound(req.webhookId);
      const size = req.pageSize <= 0 ? DEFAULT_PAGE : Math.min(req.pageSize, MAX_PAGE);
      const rows = await deps.webhooks.deliveries(req.webhookId, before, size + 1);
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return {
        deliveries: page.map(toProtoDelivery),
        nextPageToken: rows.length > size && last ? deps.pageTokens.encode(req.webhookId, last.id) : "",
      };
    },
  };
}
