/**
 * Refresh tokens, stored only as SHA-256 hashes. Every token belongs to a session (`family_id`, the
 * sessions row: session.entity.ts); rotation marks the old token used and issues a new one in the same
 * session, so reuse of a used token can revoke the session. Revocation is recorded on the session only;
 * `revoke_time` here is read for revocations made by replicas of the previous version during a rolling
 * update, and can be dropped a release later.
 */
import { defineEntity, type InferEntity, p } from "@mikro-orm/core";

/** A refresh token row. */
export const RefreshTokenEntity = defineEntity({
  name: "RefreshToken",
  tableName: "refresh_tokens",
  properties: {
    id: p.uuid().primary(),
    userId: p.uuid(),
    familyId: p.uuid(),
    tokenHash: p.blob(),
    createTime: p.datetime(),
    expireTime: p.datetime(),
    usedTime: p.datetime().nullable(),
    revokeTime: p.datetime().nullable(),
  },
});

/** A loaded refresh token row. */
export type RefreshTokenRow = InferEntity<typeof RefreshTokenEntity>;
