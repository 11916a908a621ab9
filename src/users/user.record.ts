/**
 * Users from database rows: rows read with raw SQL (pg), and the rows the cache is warmed from (instants as
 * epoch ms, so warming makes no Dates).
 */

import type { KindName, RoleName, StateName, User } from "./user.ts";
import type { CompactUser } from "./user-cache.columns.ts";

/** The columns of a user read with raw SQL (never the password hash). */
export const userColumns = `id, email, display_name, role, state, kind, labels, email_verified, password_change_required,
  version, create_time, update_time, delete_time, tokens_valid_after`;

/** A users row as pg returns it. */
export type UserRecord = {
  id: string;
  email: string;
  display_name: string;
  role: RoleName;
  state: StateName;
  kind: KindName;
  labels: Record<string, string>;
  email_verified: boolean;
  password_change_required: boolean;
  version: number;
  create_time: Date;
  update_time: Date;
  delete_time: Date | null;
  tokens_valid_after: Date | null;
};

/** The user of a raw row. */
export function userFromRecord(r: UserRecord): User {
  return {
    id: r.id,
    email: r.email,
    displayName: r.display_name,
    role: r.role,
    state: r.state,
    kind: r.kind,
    labels: r.labels,
    emailVerified: r.email_verified,
    passwordChangeRequired: r.password_change_required,
    version: r.version,
    createTime: r.create_time,
    updateTime: r.update_time,
    deleteTime: r.delete_time,
    tokensValidAfter: r.tokens_valid_after,
  };
}

/** A users row as the cache's warm-up reads it: instants as epoch ms (see warmSql in ./pg/user-reads.ts). */
export type WarmRecord = Omit<UserRecord, "create_time" | "update_time" | "delete_time" | "tokens_valid_after"> & {
  create_time: number;
  update_time: number;
  delete_time: number | null;
  tokens_valid_after: number | null;
};

/** A warm-up row in the cache's terms. */
export function compactFromWarmRecord(r: WarmRecord): CompactUser {
  return {
    id: r.id,
    email: r.email,
    displayName: r.display_name,
    role: r.role,
    state: r.state,
    kind: r.kind,
    labels: r.labels,
    emailVerified: r.email_verified,
    passwordChangeRequired: r.password_change_required,
    version: r.version,
    createMs: r.create_time,
    updateMs: r.update_time,
    deleteMs: r.delete_time,
    tokensValidAfterMs: r.tokens_valid_after,
  };
}
