/**
 * The users table as MikroORM sees it (the schema, and the store's writes: ./pg/user-writes.ts). Role and
 * state are stored as the domain's names (./user.ts), checked by the database, so the table reads well in
 * psql. user.record.ts converts entities to and from the domain user.
 */
import { defineEntity, type InferEntity, p } from "@mikro-orm/core";
import type { KindName, RoleName, StateName } from "./user.ts";

/** A user row. `version` is the optimistic lock the etag is derived from. */
export const UserEntity = defineEntity({
  name: "User",
  tableName: "users",
  properties: {
    id: p.uuid().primary(),
    email: p.text(),
    displayName: p.text(),
    role: p.text().$type<RoleName>(),
    state: p.text().$type<StateName>(),
    kind: p.text().$type<KindName>(),
    labels: p.json<Record<string, string>>(),
    emailVerified: p.boolean(),
    passwordChangeRequired: p.boolean(),
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
