/**
 * Users read with raw SQL (pg), in the entity shape the mapper reads: the hot read path, lists and streams
 * use this instead of the ORM.
 */
import type { UserRow } from "./user.entity.ts";

/** The columns of a user read with raw SQL (never the password hash). */
export const userColumns = `id, email, display_name, role, state, labels, version, create_time, update_time, delete_time,
  tokens_valid_after`;

/** A users row as pg returns it. */
export type UserRecord = {
  id: string;
  email: string;
  display_name: string;
  role: UserRow["role"];
  state: UserRow["state"];
  labels: Record<string, string>;
  version: number;
  create_time: Date;
  update_time: Date;
  delete_time: Date | null;
  tokens_valid_after: Date | null;
};

/** A raw row as the entity shape (what the mapper reads). */
export function fromRecord(r: UserRecord): UserRow {
  return {
    id: r.id,
    email: r.email,
    displayName: r.display_name,
    role: r.role,
    state: r.state,
    labels: r.labels,
    version: r.version,
    createTime: r.create_time,
    updateTime: r.update_time,
    deleteTime: r.delete_time,
    tokensValidAfter: r.tokens_valid_after,
  } as UserRow;
}
