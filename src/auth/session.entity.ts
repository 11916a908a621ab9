/**
 * Sessions: one row per login (a refresh-token family; its id is the family id and the access tokens'
 * `sid`). Rotation and every revocation lock this row, so they are serialised per session; it also holds
 * the session's idle and absolute expiry and what ListSessions shows.
 */
import { defineEntity, type InferEntity, p } from "@mikro-orm/core";

/** A session row. */
export const SessionEntity = defineEntity({
  name: "Session",
  tableName: "sessions",
  properties: {
    id: p.uuid().primary(),
    userId: p.uuid(),
    createTime: p.datetime(),
    /** The last rotation (or the login): the newest access token of the session was issued at this instant. */
    lastRefreshTime: p.datetime(),
    /** Idle expiry: REFRESH_TOKEN_TTL after the last use, never beyond `maxExpireTime`. */
    expireTime: p.datetime(),
    /** Absolute expiry: SESSION_MAX_AGE after the login, whatever the rotations. */
    maxExpireTime: p.datetime(),
    revokeTime: p.datetime().nullable(),
    clientAddress: p.text().nullable(),
    userAgent: p.text().nullable(),
  },
});

/** A loaded session row. */
export type SessionRow = InferEntity<typeof SessionEntity>;
