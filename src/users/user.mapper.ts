/**
 * Converts between user rows and the user.v1 messages. The only place that knows both shapes.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Role, type User, UserSchema, UserState } from "../../gen/user/v1/user_pb.js";
import type { StoredRole, StoredState, UserRow } from "./user.entity.ts";

/** The etag of a row: opaque to callers, changes with every write (it is the optimistic-lock version). */
export function etagOf(row: Pick<UserRow, "version">): string {
  return `W/"${row.version}"`;
}

/** Proto role to stored role; undefined for ROLE_UNSPECIFIED. */
export function storedRole(role: Role): StoredRole | undefined {
  return role === Role.ADMIN ? "admin" : role === Role.USER ? "user" : undefined;
}

const stateToProto: Record<StoredState, UserState> = {
  active: UserState.ACTIVE,
  suspended: UserState.SUSPENDED,
  deleted: UserState.DELETED,
};

/** A row as the user.v1.User message. */
export function toProtoUser(row: UserRow): User {
  return create(UserSchema, {
    id: row.id,
    email: row.email,
    displayName: row.displayName,
    role: row.role === "admin" ? Role.ADMIN : Role.USER,
    state: stateToProto[row.state],
    labels: { ...row.labels },
    createTime: timestampFromDate(row.createTime),
    updateTime: timestampFromDate(row.updateTime),
    deleteTime: row.deleteTime ? timestampFromDate(row.deleteTime) : undefined,
    etag: etagOf(row),
  });
}
