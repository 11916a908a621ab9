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

/** The fields of the User message, by their proto names: what a creation changes. */
export const USER_FIELDS = [
  "id",
  "email",
  "display_name",
  "role",
  "state",
  "labels",
  "create_time",
  "update_time",
  "delete_time",
  "etag",
  "email_verified",
  "kind",
  "password_change_required",
] as const;

const sameLabels = (a: Record<string, string>, b: Record<string, string>) => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
};

/**
 * The User fields (proto names) a change made: every field for a creation; otherwise those whose values
 * differ between `previous` and `next`, leaving out `update_time` and `etag`, which every change moves (a
 * new password alone thus changes none, or only `password_change_required`).
 */
export function changedFields(previous: UserSnapshot | null | undefined, next: UserSnapshot): string[] {
  if (!previous) return [...USER_FIELDS];
  const a = userFromSnapshot(previous);
  const b = userFromSnapshot(next);
  const changed: string[] = [];
  if (a.email !== b.email) changed.push("email");
  if (a.displayName !== b.displayName) changed.push("display_name");
  if (a.role !== b.role) changed.push("role");
  if (a.state !== b.state) changed.push("state");
  if (!sameLabels(a.labels, b.labels)) changed.push("labels");
  if (a.deleteTime?.getTime() !== b.deleteTime?.getTime()) changed.push("delete_time");
  if (a.emailVerified !== b.emailVerified) changed.push("email_verified");
  if (a.kind !== b.kind) changed.push("kind");
  if (a.passwordChangeRequired !== b.passwordChangeRequired) changed.push("password_change_required");
  return changed;
}
