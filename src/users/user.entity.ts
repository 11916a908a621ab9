/**
 * The users table as MikroORM sees it. Role and state are stored as short lowercase words (checked by the
 * database) so the table reads well in psql; the mapper converts them to and from the proto enums.
 */
import { defineEntity, type InferEntity, p } from "@mikro-orm/core";

/** Stored role names. */
export type StoredRole = "user" | "admin";
/** Stored state names. */
export type StoredState = "active" | "suspended" | "deleted";

/** A user row. `version` is the optimistic lock the etag is derived from. */
export const UserEntity = defineEntity({
  name: "User",
  tableName: "users",
  properties: {
    id: p.uuid().primary(),
    email: p.text(),
    displayName: p.text(),
    role: p.text().$type<StoredRole>(),
    state: p.text().$type<StoredState>(),
    labels: p.json<Record<string, string>>(),
    passwordHash: p.text().nullable().hidden().lazy(),
    version: p.integer(),
    createTime: p.datetime(),
    updateTime: p.datetime(),
    deleteTime: p.datetime().nullable(),
    tokensValidAfter: p.datetime().nullable(),
  },
});

/** A loaded user row. */
export type UserRow = InferEntity<typeof UserEntity>;
