/**
 * Users to and from the user.v1 messages: the only place that knows both the domain user (./user.ts) and
 * the proto's enums.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Role, UserKind, type User as UserMessage, UserSchema, UserState } from "../../gen/user/v1/user_pb.js";
import { etagOf, type KindName, type RoleName, type StateName, type User } from "./user.ts";

/** Proto role to role name; undefined for ROLE_UNSPECIFIED. */
export function roleFromProto(role: Role): RoleName | undefined {
  return role === Role.ADMIN ? "admin" : role === Role.USER ? "user" : undefined;
}

/** Proto kind to kind name (unspecified: a person). */
export function kindFromProto(kind: UserKind): KindName {
  return kind === UserKind.SERVICE ? "service" : "human";
}

/** The state an update may set: suspended, or else active (DeleteUser and UndeleteUser do the rest). */
export function settableStateFromProto(state: UserState): "active" | "suspended" {
  return state === UserState.SUSPENDED ? "suspended" : "active";
}

const stateToProto: Record<StateName, UserState> = {
  active: UserState.ACTIVE,
  suspended: UserState.SUSPENDED,
  deleted: UserState.DELETED,
};

/** A user as the user.v1.User message. */
export function toProtoUser(u: User): UserMessage {
  return create(UserSchema, {
    id: u.id,
    email: u.email,
    displayName: u.displayName,
    role: u.role === "admin" ? Role.ADMIN : Role.USER,
    state: stateToProto[u.state],
    labels: { ...u.labels },
    kind: u.kind === "service" ? UserKind.SERVICE : UserKind.HUMAN,
    emailVerified: u.emailVerified,
    passwordChangeRequired: u.passwordChangeRequired,
    createTime: timestampFromDate(u.createTime),
    updateTime: timestampFromDate(u.updateTime),
    deleteTime: u.deleteTime ? timestampFromDate(u.deleteTime) : undefined,
    etag: etagOf(u),
  });
}
