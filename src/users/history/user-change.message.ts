/**
 * A change log row as a `user.v1.UserChange`: the item of ListUserChanges (history.service.ts) and the `data`
 * of an outbound user event (src/events). Its event id is the row's id in decimal.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type UserChange, UserChangeSchema, WatchEventType } from "../../../gen/user/v1/user_service_pb.js";
import { ACTOR_COLUMNS, type ActorRow, actorOfRow } from "../../changes/change-feed.ts";
import type { ChangeType, UserSnapshot } from "../../changes/change-log.ts";
import { eventIdOf, toProtoActor } from "../actor.message.ts";
import { toProtoUser } from "../user.message.ts";
import { changedFields, userFromSnapshot } from "../user.snapshot.ts";
import { encodeResumeToken } from "../watch/resume-token.ts";

/** The columns of `user_changes` a UserChange is made of. */
export const USER_CHANGE_COLUMNS = `id, seq, type, change_time, snapshot, previous, changed_fields, ${ACTOR_COLUMNS}`;

/** A numbered row of `user_changes`, as USER_CHANGE_COLUMNS selects it. */
export type UserChangeRow = ActorRow & {
  id: string;
  seq: string;
  type: ChangeType;
  change_time: Date;
  snapshot: UserSnapshot;
  previous: UserSnapshot | null;
  changed_fields: string[] | null;
};

const eventTypes = {
  created: WatchEventType.CREATED,
  updated: WatchEventType.UPDATED,
  deleted: WatchEventType.DELETED,
  undeleted: WatchEventType.UNDELETED,
} as const;

/** The row as the proto message. */
export function toUserChange(r: UserChangeRow): UserChange {
  return create(UserChangeSchema, {
    eventId: eventIdOf(r.id),
    resumeToken: encodeResumeToken(Number(r.seq)),
    type: eventTypes[r.type],
    changeTime: timestampFromDate(r.change_time),
    actor: toProtoActor(actorOfRow(r)),
    // Rows written before changed fields were stored: computed from the snapshots while `previous` is kept.
    changedFields:
      r.changed_fields ?? (r.type === "created" || r.previous ? changedFields(r.previous, r.snapshot) : []),
    user: toProtoUser(userFromSnapshot(r.snapshot)),
  });
}
