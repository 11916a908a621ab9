/**
 * The keys access tokens are signed and verified with. HS256 with JWT_SECRET by default; with
 * JWT_PRIVATE_KEY_FILE, RS256 (RSA) or ES256 (EC P-256), chosen by the key's type so that one key can never
 * be used under another algorithm (RFC 8725 §3.1). Asymmetric keys are named by their RFC 7638 thumbprint
 * (`kid`), so a verifier picks the one key a token names instead of trying them all, and the previous
 * public keys stay verification-only keys, so tokens signed before a rotation live out their TTL.
 */
import { createHash, createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from "node:crypto";

/** A JWS algorithm this service signs with. */
export type JwsAlgorithm = "HS256" | "RS256" | "ES256";

/** A key with the one algorithm it is used with; `kid` is undefined for the shared secret. */
export interface JwsKey {
  readonly kid: string | undefined;
  readonly algorithm: JwsAlgorithm;
  readonly key: KeyObject;
}

/** A public key as published in the JWKS document (RFC 7517). */
export interface PublicJwk extends JsonWebKey {
  kid: string;
  alg: JwsAlgorithm;
  use: "sig";
}

/** The signing key and every key that verifies. */
export interface SigningKeys {
  readonly signing: JwsKey;
  /** The key a token's header names (its `kid`), or undefined: a token may only be checked with that key. */
  verificationKey(kid: unknown): JwsKey | undefined;
  /** Public verification keys, current first (empty for HS256: a shared secret is never published). */
  readonly publicJwks: readonly PublicJwk[];
}

/** The algorithm an asymmetric key is pinned to; throws for a key this service does not sign with. */
export function algorithmOf(key: KeyObject): "RS256" | "ES256" {
  if (key.asymmetricKeyType === "rsa") return "RS256";
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return "ES256";
  throw new Error(`unsupported JWT key type ${key.asymmetricKeyType ?? key.type}: use RSA or EC P-256`);
}

/** The RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key: a stable, collision-free `kid`. */
export function jwkThumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: "jwk" });
  // Only the required members, in lexicographic order, no whitespace (RFC 7638 §3.2).
  const members =
    jwk.kty === "RSA" ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash("sha256").update(JSON.stringify(members)).digest("base64url");
}

/** The JWK of a verification key (always a public key, so no private member can slip out). */
function publicJwkOf(k: JwsKey): PublicJwk {
  const kid = k.kid as string;
  return { ...k.key.export({ format: "jwk" }), kid, alg: k.algorithm, use: "sig" };
}

/** HS256 with a shared secret: the default, one key, no `kid`, nothing published. */
export function symmetricKeys(secret: string): SigningKeys {
  const signing: JwsKey = { kid: undefined, algorithm: "HS256", key: createSecretKey(Buffer.from(secret, "utf8")) };
  return { signing, verificationKey: (kid) => (kid === undefined ? signing : undefined), publicJwks: [] };
}

/**
 * RS256 or ES256 with a private key; `previous` are public keys of earlier signing keys, still accepted
 * (each under its own algorithm) until the tokens they signed expire.
 */
export function asymmetricKeys(privateKey: KeyObject, previous: readonly KeyObject[] = []): SigningKeys {
  const current = createPublicKey(privateKey);
  const signing: JwsKey = { kid: jwkThumbprint(current), algorithm: algorithmOf(privateKey), key: privateKey };
  const verifying = new Map<string, JwsKey>([[signing.kid as string, { ...signing, key: current }]]);
  for (const p of previous) {
    const key = p.type === "private" ? createPublicKey(p) : p;
    const kid = jwkThumbprint(key);
    if (!verifying.has(kid)) verifying.set(kid, { kid, algorithm: algorithmOf(key), key });
  }
  const publicJwks = [...verifying.values()].map(publicJwkOf);
  return {
    signing,
    verificationKey: (kid) => (typeof kid === "string" ? verifying.get(kid) : undefined),
    publicJwks,
  };
}
