/**
 * A row of `auth_events` as an `auth.v1.AuthEvent`: the item of ListAuthEvents (auth-events.service.ts) and
 * the `data` of an outbound auth event (src/events). Its event id is the row's UUIDv7.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AuthEvent, AuthEventSchema, AuthEventType as ProtoType } from "../../gen/auth/v1/auth_event_pb.js";
import type { AuthEventType } from "./auth-event-recorder.ts";

/** The columns of `auth_events` an AuthEvent is made of. */
export const AUTH_EVENT_COLUMNS = "id, type, time, user_id, client_address, user_agent, session_id, email";

/** A row of `auth_events`, as AUTH_EVENT_COLUMNS selects it. */
export interface AuthEventRow {
  id: string;
  type: AuthEventType;
  time: Date;
  user_id: string | null;
  client_address: string | null;
  user_agent: string | null;
  session_id: string | null;
  email: string | null;
}

/** The row as the proto message. */
export function toAuthEvent(r: AuthEventRow): AuthEvent {
  return create(AuthEventSchema, {
    id: r.id,
    type: ProtoType[r.type] ?? ProtoType.UNSPECIFIED,
    time: timestampFromDate(r.time),
    userId: r.user_id ?? "",
    clientAddress: r.client_address ?? "",
    userAgent: r.user_agent ?? "",
    sessionId: r.session_id ?? "",
    email: r.email ?? "",
  });
}
