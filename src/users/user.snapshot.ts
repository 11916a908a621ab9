/**
 * Users to and from the change log's snapshots (src/changes/change-log.ts): the JSON each change records of
 * the user after it and before it, which watchers and every replica's cache read back.
 */
import type { UserSnapshot } from "../changes/change-log.ts";
import type { User } from "./user.ts";

/** The snapshot of a user. */
export function snapshotOf(u: User): UserSnapshot {
  return {
    id: u.id,
    email: u.email,
    displayName: u.displayName,
    role: u.role,
    state: u.state,
    kind: u.kind,
    labels: { ...u.labels },
    emailVerified: u.emailVerified,
    passwordChangeRequired: u.passwordChangeRequired,
    version: u.version,
    createTime: u.createTime.toISOString(),
    updateTime: u.updateTime.toISOString(),
    deleteTime: u.deleteTime ? u.deleteTime.toISOString() : null,
    tokensValidAfter: u.tokensValidAfter ? u.tokensValidAfter.toISOString() : null,
  };
}

/** The user a snapshot records. */
export function userFromSnapshot(s: UserSnapshot): User {
  return {
    id: s.id,
    email: s.email,
    displayName: s.displayName,
    role: s.role,
    state: s.state,
    // Rows logged before these fields existed lack them: the defaults of the columns they came from.
    kind: s.kind ?? "human",
    labels: s.labels,
    emailVerified: s.emailVerified ?? false,
    passwordChangeRequired: s.passwordChangeRequired ?? false,
    version: s.version,
    createTime: new Date(s.createTime),
    updateTime: new Date(s.updateTime),
    deleteTime: s.deleteTime ? new Date(s.deleteTime) : null,
    tokensValidAfter: s.tokensValidAfter ? new Date(s.tokensValidAfter) : null,
  };
}
