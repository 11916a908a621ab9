/**
 * The change log's actors to the user.v1.Actor message (WatchUsers, ListUserChanges). A row logged before
 * actors were recorded has none: ACTOR_KIND_UNSPECIFIED, everything else empty.
 */
import { create } from "@bufbuild/protobuf";
import { ActorKind, type Actor as ActorMessage, ActorSchema } from "../../gen/user/v1/actor_pb.js";
import type { RecordedActor } from "../changes/change-feed.ts";

const kinds = { user: ActorKind.USER, api_key: ActorKind.API_KEY, system: ActorKind.SYSTEM } as const;

/** The message of a recorded actor. */
export function toProtoActor(a: RecordedActor | null): ActorMessage {
  if (!a) return create(ActorSchema, { kind: ActorKind.UNSPECIFIED });
  return create(ActorSchema, {
    kind: kinds[a.kind],
    userId: a.userId ?? "",
    apiKeyId: a.apiKeyId ?? "",
    clientAddress: a.clientAddress ?? "",
    requestId: a.requestId ?? "",
  });
}

/** A change's event_id: its change-log row id, in decimal (stable: taken at insert, never reused). */
export const eventIdOf = (id: number | string): string => String(id);
