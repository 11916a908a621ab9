/**
 * Key files for the asymmetric-signing tests: key pairs written as PEM files under a temporary directory
 * (the service reads JWT_PRIVATE_KEY_FILE and JWT_PREVIOUS_PUBLIC_KEY_FILE from disk), and tokens signed with
 * any key and algorithm, as an attacker holding (or guessing) a key would sign them.
 */
import { createHash, createHmac, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A key pair on disk. */
export interface KeyPairFiles {
  privateKey: KeyObject;
  publicKey: KeyObject;
  privatePem: string;
  publicPem: string;
  privateFile: string;
  publicFile: string;
}

/** The kinds of key the tests use. */
export type KeyKind = "rsa" | "rsa-1024" | "ec" | "ec-p384" | "ed25519";

function generate(kind: KeyKind): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (kind) {
    case "rsa":
      return generateKeyPairSync("rsa", { modulusLength: 2048 });
    case "rsa-1024":
      return generateKeyPairSync("rsa", { modulusLength: 1024 });
    case "ec":
      return generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    case "ec-p384":
      return generateKeyPairSync("ec", { namedCurve: "secp384r1" });
    case "ed25519":
      return generateKeyPairSync("ed25519");
  }
}

/** A temporary directory of key files; `remove()` deletes it. */
export function keyDir() {
  const dir = mkdtempSync(join(tmpdir(), "jwt-keys-"));
  let n = 0;
  return {
    dir,
    /** Generates a key pair and writes both halves as PEM files. */
    pair(kind: KeyKind): KeyPairFiles {
      const { privateKey, publicKey } = generate(kind);
      const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
      const privateFile = join(dir, `${kind}-${++n}.key`);
      const publicFile = join(dir, `${kind}-${n}.pub`);
      writeFileSync(privateFile, privatePem, { mode: 0o600 });
      writeFileSync(publicFile, publicPem);
      return { privateKey, publicKey, privatePem, publicPem, privateFile, publicFile };
    },
    /** Writes any text to a file in the directory; returns its path. */
    file(name: string, text: string): string {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** RFC 7638 thumbprint, computed here independently of the service's code. */
export function thumbprint(key: KeyObject): string {
  const j = (key.type === "private" ? createPublicKey(key) : key).export({ format: "jwk" });
  const canonical =
    j.kty === "RSA"
      ? `{"e":"${j.e}","kty":"RSA","n":"${j.n}"}`
      : `{"crv":"${j.crv}","kty":"EC","x":"${j.x}","y":"${j.y}"}`;
  return createHash("sha256").update(canonical).digest("base64url");
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** A JWS algorithm a forger may put in the header. */
export type ForgedAlg = "HS256" | "RS256" | "RS384" | "PS256" | "ES256" | "ES384";

/**
 * Signs `claims` with `key` under `alg`, with `header` merged into the JOSE header (whose `typ` is the
 * access tokens' `at+jwt` unless `header` says otherwise). HS256 takes a secret
 * (a string or bytes: the classic attack signs with the RSA public key's PEM as the HMAC secret).
 */
export function signToken(
  claims: Record<string, unknown>,
  alg: ForgedAlg,
  key: KeyObject | string,
  header: Record<string, unknown> = {},
): string {
  const input = `${b64({ alg, typ: "at+jwt", ...header })}.${b64(claims)}`;
  let sig: Buffer;
  if (alg === "HS256") {
    sig = createHmac("sha256", key as string)
      .update(input)
      .digest();
  } else {
    const hash = `sha${alg.slice(2)}`;
    const k = key as KeyObject;
    if (alg.startsWith("ES")) sig = sign(hash, Buffer.from(input), { key: k, dsaEncoding: "ieee-p1363" });
    else if (alg.startsWith("PS"))
      sig = sign(hash, Buffer.from(input), { key: k, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 });
    else sig = sign(hash, Buffer.from(input), k);
  }
  return `${input}.${sig.toString("base64url")}`;
}

/** The JOSE header of a token, decoded without verification. */
export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()) as Record<string, unknown>;
}
