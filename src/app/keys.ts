/**
 * The service's key material: the JWT signing and verification keys (HS256 from JWT_SECRET, or RS256/ES256
 * from JWT_PRIVATE_KEY_FILE), the access-token signer, and keys derived from the same material for other
 * purposes (page tokens, one-time codes), so every replica agrees on them without more configuration.
 */
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { asymmetricKeys, symmetricKeys } from "../auth/signing-keys.ts";
import { createAccessTokens } from "../auth/tokens.ts";
import type { Config } from "../config.ts";

/** Reads JWT_SECRET, or outside production generates one and keeps it under DATA_DIR. */
function jwtSecretFor(config: Config): string {
  if (config.jwtSecret) return config.jwtSecret;
  const file = join(resolve(config.dataDir), "jwt-secret");
  if (!existsSync(file)) {
    mkdirSync(resolve(config.dataDir), { recursive: true });
    writeFileSync(file, randomBytes(48).toString("base64url"), { mode: 0o600 });
  }
  return readFileSync(file, "utf8").trim();
}

/** The keys of a running service. */
export function createKeys(config: Config) {
  // HS256 with the shared secret unless a private key is configured (then no secret is read or generated).
  const signingKeys = config.jwtPrivateKey
    ? asymmetricKeys(config.jwtPrivateKey, config.jwtPreviousPublicKeys)
    : symmetricKeys(jwtSecretFor(config));
  // Keys for other purposes (page tokens) derive from the token key material, so replicas agree on them.
  const derivedKey = (purpose: string) =>
    createHmac("sha256", config.jwtPrivateKey?.export({ format: "der", type: "pkcs8" }) ?? jwtSecretFor(config))
      .update(purpose)
      .digest("base64url");
  const accessTokens = createAccessTokens({
    keys: signingKeys,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    accessTokenTtlMs: config.accessTokenTtlMs,
  });
  return { signingKeys, derivedKey, accessTokens };
}
