/**
 * The form of an API key's secret: `usk_`, 43 base62 characters holding 256 random bits, then 6 base62
 * characters of a CRC-32 of everything before them. The prefix tells a key from a JWT (which starts with
 * `eyJ`) without parsing; the checksum refuses a mistyped or made-up token without any lookup (a random
 * string passes with probability 2^-32). Base62 so that a double click selects the whole secret.
 *
 * Stored only as SHA-256: with 256 random bits there is nothing to guess, so a slow password hash would add
 * cost per call and no safety, and a fast, unsalted hash is what lets every replica find a key by the hash
 * of the token presented (docs/adr/0019-api-keys.md).
 */
import { hash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

/** What every secret starts with. */
export const API_KEY_PREFIX = "usk_";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_CHARS = 43; // 62^43 > 2^256
const CHECK_CHARS = 6; // 62^6 > 2^32
const SHAPE = new RegExp(`^${API_KEY_PREFIX}[0-9A-Za-z]{${BODY_CHARS + CHECK_CHARS}}$`);
/** How many characters of the secret `ApiKey.prefix` shows: `usk_` and 8 of the random part (~48 bits). */
const SHOWN_CHARS = API_KEY_PREFIX.length + 8;

function base62(n: bigint, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

/** The checksum's characters: a CRC-32 in base62 (plain numbers: it runs on every call made with a key). */
function checksumOf(text: string): string {
  let n = crc32(text);
  let out = "";
  for (let i = 0; i < CHECK_CHARS; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A new secret, its stored hash and the prefix shown for it. */
export function newApiKeySecret(): { secret: string; hash: string; prefix: string } {
  const body = API_KEY_PREFIX + base62(BigInt(`0x${randomBytes(32).toString("hex")}`), BODY_CHARS);
  const secret = body + checksumOf(body);
  return { secret, hash: hashApiKeySecret(secret), prefix: secret.slice(0, SHOWN_CHARS) };
}

/** True when a bearer token is meant as an API key (it may still be malformed). */
export const looksLikeApiKey = (token: string): boolean => token.startsWith(API_KEY_PREFIX);

/** True when the token has the shape and checksum of a secret this service issues. */
export function wellFormedApiKey(token: string): boolean {
  if (!SHAPE.test(token)) return false;
  const at = token.length - CHECK_CHARS;
  return checksumOf(token.slice(0, at)) === token.slice(at);
}

/** The stored form of a secret: SHA-256, base64url (bytea in the database, a map key in memory). */
export function hashApiKeySecret(secret: string): string {
  return hash("sha256", secret, "base64url");
}
