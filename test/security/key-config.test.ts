/**
 * Key configuration fails closed and loudly: every unusable JWT_PRIVATE_KEY_FILE or
 * JWT_PREVIOUS_PUBLIC_KEY_FILE (missing, not PEM, encrypted, the wrong half, a type or size that cannot sign
 * RS256/ES256) is a ConfigError naming the variable, and the real process exits 2 with one line, before it
 * touches a database. Also: the `kid` computation matches RFC 7638's own example.
 */
import { execFile } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { SERVER_ENTRY } from "../../scripts/ensure-built.ts";
import { jwkThumbprint } from "../../src/auth/signing-keys.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { keyDir } from "../helpers/keys.ts";

const keys = keyDir();
afterAll(() => keys.remove());

const rsa = keys.pair("rsa");
const ec = keys.pair("ec");

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("JWT_PRIVATE_KEY_FILE", () => {
  const encrypted = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  }).privateKey;
  const bad: [string, () => string, RegExp][] = [
    ["a file that does not exist", () => `${keys.dir}/missing.pem`, /cannot read .*ENOENT/],
    ["a directory", () => keys.dir, /cannot read .*EISDIR/],
    ["a file that is not PEM", () => keys.file("junk.pem", "hello"), /not an unencrypted PEM private key/],
    ["a public key", () => rsa.publicFile, /not an unencrypted PEM private key/],
    ["an encrypted private key", () => keys.file("encrypted.pem", encrypted), /not an unencrypted PEM private key/],
    [
      "an Ed25519 key",
      () => keys.pair("ed25519").privateFile,
      /ed25519 key; use an RSA \(RS256\) or EC P-256 \(ES256\) key/,
    ],
    ["an EC P-384 key", () => keys.pair("ec-p384").privateFile, /EC key on secp384r1; ES256 needs P-256/],
    ["a 1024-bit RSA key", () => keys.pair("rsa-1024").privateFile, /1024-bit RSA key; RS256 needs at least 2048 bits/],
  ];
  it.each(bad)("refuses %s, naming the variable", (_name, file, message) => {
    const err = configError({ JWT_PRIVATE_KEY_FILE: file() });
    expect(err.variable).toBe("JWT_PRIVATE_KEY_FILE");
    expect(err.message).toMatch(/^JWT_PRIVATE_KEY_FILE: /);
    expect(err.message).toMatch(message);
  });

  it("accepts RSA 2048 and EC P-256 keys, and then needs no JWT_SECRET in production", () => {
    for (const file of [rsa.privateFile, ec.privateFile]) {
      const config = loadConfig({ JWT_PRIVATE_KEY_FILE: file, NODE_ENV: "production" });
      expect(config.jwtPrivateKey?.type).toBe("private");
      expect(config.jwtSecret).toBeUndefined();
    }
    expect(configError({ NODE_ENV: "production" }).variable).toBe("JWT_SECRET");
  });
});

describe("JWT_PREVIOUS_PUBLIC_KEY_FILE", () => {
  it("reads every key of a PEM bundle (public or private halves)", () => {
    const bundle = keys.file("bundle.pem", `${rsa.publicPem}\n${ec.publicPem}\n${keys.pair("rsa").privatePem}`);
    const config = loadConfig({ JWT_PRIVATE_KEY_FILE: ec.privateFile, JWT_PREVIOUS_PUBLIC_KEY_FILE: bundle });
    expect(config.jwtPreviousPublicKeys.map((k) => k.asymmetricKeyType)).toEqual(["rsa", "ec", "rsa"]);
  });

  it("reads a comma list of files", () => {
    const other = keys.pair("ec");
    const config = loadConfig({
      JWT_PRIVATE_KEY_FILE: rsa.privateFile,
      JWT_PREVIOUS_PUBLIC_KEY_FILE: `${rsa.publicFile}, ${other.publicFile}`,
    });
    expect(config.jwtPreviousPublicKeys.map((k) => k.asymmetricKeyType)).toEqual(["rsa", "ec"]);
  });

  it.each([
    ["a file with no PEM block", () => keys.file("empty.pem", "nothing here"), /holds no PEM key/],
    ["a file that does not exist", () => `${keys.dir}/nope.pub`, /cannot read/],
    ["an Ed25519 public key", () => keys.pair("ed25519").publicFile, /ed25519 key/],
    [
      "a PEM block that is not a key",
      () => keys.file("cert.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      /not an unencrypted PEM public key/,
    ],
  ])("refuses %s", (_name, file, message) => {
    const err = configError({ JWT_PRIVATE_KEY_FILE: rsa.privateFile, JWT_PREVIOUS_PUBLIC_KEY_FILE: file() });
    expect(err.variable).toBe("JWT_PREVIOUS_PUBLIC_KEY_FILE");
    expect(err.message).toMatch(message);
  });

  it("is refused without JWT_PRIVATE_KEY_FILE (a rotation needs a new signing key)", () => {
    expect(configError({ JWT_PREVIOUS_PUBLIC_KEY_FILE: rsa.publicFile }).variable).toBe("JWT_PREVIOUS_PUBLIC_KEY_FILE");
  });
});

describe("the service process", () => {
  it("exits 2 with one line naming the variable when the key file is unusable", async () => {
    const result = await new Promise<{ code: number | null; stderr: string; stdout: string }>((done) => {
      const child = execFile(
        process.execPath,
        [SERVER_ENTRY],
        {
          cwd: keys.dir,
          env: { PATH: process.env.PATH, JWT_PRIVATE_KEY_FILE: keys.pair("ed25519").privateFile, DATA_DIR: keys.dir },
          timeout: 50_000,
        },
        (_err, stdout, stderr) => done({ code: child.exitCode, stdout, stderr }),
      );
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(/^configuration error: JWT_PRIVATE_KEY_FILE: .*ed25519 key/);
  }, 60_000); // loading the whole module graph from a cold disk can take several seconds
});

describe("the kid", () => {
  it("is the RFC 7638 thumbprint (the RFC's own example, section 3.1)", () => {
    const n =
      "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const key = createPublicKey({ key: { kty: "RSA", n, e: "AQAB" }, format: "jwk" });
    expect(jwkThumbprint(key)).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  });
});
