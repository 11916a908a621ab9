/**
 * Webhook signing secrets at rest: AES-256-GCM under a key derived from the server's key material
 * (`derivedKey("webhook-secrets")`, so every replica can open them), with the webhook's id as associated
 * data so a sealed secret copied onto another row does not open there. Signing needs the secret itself, so
 * it cannot be hashed like an API key; this keeps it out of a database dump or backup read on its own.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A new signing secret in the form Standard Webhooks libraries take: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/** Seals and opens secrets with one key (base64url of at least 32 bytes, as `derivedKey` gives). */
export function createSecretBox(key: string) {
  const k = Buffer.from(key, "base64url").subarray(0, 32);
  if (k.length !== 32) throw new RangeError("the webhook secret key must be 32 bytes");
  return {
    seal(webhookId: string, secret: string): Buffer {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", k, iv).setAAD(Buffer.from(webhookId));
      const body = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]);
    },
    /** Throws when the bytes were not sealed for this id under this key. */
    open(webhookId: string, sealed: Buffer): string {
      const decipher = createDecipheriv("aes-256-gcm", k, sealed.subarray(0, IV_BYTES))
        .setAAD(Buffer.from(webhookId))
        .setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
    },
  };
}

/** Seals and opens webhook secrets. */
export type SecretBox = ReturnType<typeof createSecretBox>;
