/**
 * The user as the service works with it: a plain object, the same whichever way it was read (the database,
 * the in-memory cache, the change log). Converters to and from the other shapes live one per edge:
 * user.record.ts (database rows), user.message.ts (the user.v1 messages), user.snapshot.ts (the change log).
 */

/** Role names, as stored. */
export type RoleName = "user" | "admin";
/** State names, as stored. */
export type StateName = "active" | "suspended" | "deleted";
/** Kind names, as stored: a person, or a service account (no password, API keys only). */
export type KindName = "human" | "service";

/** A user (never its password hash). `version` grows with every write; the etag is derived from it. */
export interface User {
  id: string;
  email: string;
  displayName: string;
  role: RoleName;
  state: StateName;
  kind: KindName;
  labels: Record<string, string>;
  /** True once the email was verified; false again when it changes. */
  emailVerified: boolean;
  /** Set by an admin's SetPassword: until ChangePassword, the user's tokens work only for a few methods. */
  passwordChangeRequired: boolean;
  version: number;
  createTime: Date;
  updateTime: Date;
  deleteTime: Date | null;
  /** Access tokens issued before this instant are dead (internal: never sent to callers). */
  tokensValidAfter: Date | null;
}

/** A user with its password hash (null: the user cannot log in with a password), for the auth service. */
export type UserWithHash = User & { passwordHash: string | null };

/** What the auth check needs of a user: read on every call, so only these facts. */
export interface UserStatus {
  role: RoleName;
  state: StateName;
  /** Epoch ms; 0 when no token was ever revoked. */
  tokensValidAfterMs: number;
  /** The user's tokens work only for the methods that allow it (authz.v1 allowed_while_password_change_required). */
  passwordChangeRequired: boolean;
}

/** The fields of a new user. */
export interface NewUser {
  email: string;
  displayName: string;
  role: RoleName;
  labels: Record<string, string>;
  passwordHash: string | null;
  /** Default "human". A service account has no password. */
  kind?: KindName;
}

/** The fields an update may change (undefined: unchanged). State is only ever active or suspended here. */
export interface UserPatch {
  email?: string;
  displayName?: string;
  role?: RoleName;
  labels?: Record<string, string>;
  state?: "active" | "suspended";
}

/** The etag of a user: opaque to callers, changes with every write (it is the version). */
export function etagOf(user: Pick<User, "version">): string {
  return `W/"${user.version}"`;
}

/** A user just created. */
export function newUser(id: string, input: Omit<NewUser, "passwordHash">, now: Date): User {
  return {
    id,
    email: input.email,
    displayName: input.displayName,
    role: input.role,
    state: "active",
    kind: input.kind ?? "human",
    labels: input.labels,
    emailVerified: false,
    passwordChangeRequired: false,
    version: 1,
    createTime: now,
    updateTime: now,
    deleteTime: null,
    tokensValidAfter: null,
  };
}

/** The status of a user, or null for none. */
export function statusOf(user: User | null): UserStatus | null {
  return user
    ? {
        role: user.role,
        state: user.state,
        tokensValidAfterMs: user.tokensValidAfter?.getTime() ?? 0,
        passwordChangeRequired: user.passwordChangeRequired,
      }
    : null;
}

// The transitions. Each changes a user in place (the store applies it to the locked row, then bumps the version);
// the store revokes the user's sessions whenever one moves tokensValidAfter.

/** Applies an update. Suspending a user revokes its tokens; a new email address is not verified. */
export function applyPatch(user: User, patch: UserPatch, now: Date): void {
  if (patch.email !== undefined) {
    if (patch.email.toLowerCase() !== user.email.toLowerCase()) user.emailVerified = false;
    user.email = patch.email;
  }
  if (patch.displayName !== undefined) user.displayName = patch.displayName;
  if (patch.role !== undefined) user.role = patch.role;
  if (patch.labels !== undefined) user.labels = { ...patch.labels };
  if (patch.state !== undefined) {
    if (patch.state === "suspended" && user.state !== "suspended") user.tokensValidAfter = now;
    user.state = patch.state;
  }
}

/** Soft-deletes a user: its email is free again, and its tokens die. */
export function markDeleted(user: User, now: Date): void {
  user.state = "deleted";
  user.deleteTime = now;
  user.tokensValidAfter = now;
}

/**
 * A new password: every token issued before it dies. `changeRequired` (an admin's SetPassword) restricts the
 * user's tokens until the user chooses one; a password the user chose clears it.
 */
export function markPasswordChanged(user: User, now: Date, changeRequired = false): void {
  user.tokensValidAfter = now;
  user.passwordChangeRequired = changeRequired;
}

/** The user proved it receives mail at its address. */
export function markEmailVerified(user: User): void {
  user.emailVerified = true;
}

/** Restores a soft-deleted user (a user that is not deleted is left as it is). */
export function markUndeleted(user: User): void {
  if (user.state !== "deleted") return;
  user.state = "active";
  user.deleteTime = null;
}
