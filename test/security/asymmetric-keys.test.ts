/**
 * RS256 and ES256 with JWT_PRIVATE_KEY_FILE, over the wire: tokens carry the RFC 7638 thumbprint as `kid`,
 * the JWK Set at /.well-known/jwks.json verifies them (and holds no private member), the algorithm is pinned
 * to the key type (the HS256-with-the-public-key confusion attack, RS384/PS256 with the right key, another
 * key under the right kid, a missing kid: all refused), and a rotation keeps the previous key's tokens
 * working while JWT_PREVIOUS_PUBLIC_KEY_FILE lists it, and only then.
 */
import { createPublicKey, verify } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { login } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { headerOf, keyDir, signToken, thumbprint } from "../helpers/keys.ts";
import { ADMIN, JWT_SECRET, startTestServer, type TestServer } from "../helpers/server.ts";
import { forge, payloadOf, unsigned, validClaims } from "../helpers/tokens.ts";
import { expectInvalidToken } from "./expect.ts";

const { getCurrentUser } = AuthService.method;
const keys = keyDir();
const rsa = keys.pair("rsa");
const ec = keys.pair("ec");
const stranger = keys.pair("rsa");

let rsaServer: TestServer;
let grpc: GrpcJs;
let adminId: string;
let rsaToken: string;

beforeAll(async () => {
  rsaServer = await startTestServer({ JWT_PRIVATE_KEY_FILE: rsa.privateFile });
  grpc = grpcJs(rsaServer.port);
  rsaToken = await login(rsaServer.url, ADMIN.email, ADMIN.password);
  adminId = String(payloadOf(rsaToken).sub);
});
afterAll(async () => {
  grpc?.close();
  await rsaServer?.close();
  keys.remove();
});

interface JwksAnswer {
  status: number;
  headers: Headers;
  keys: Record<string, string>[];
}

async function jwks(url: string, init: RequestInit = {}): Promise<JwksAnswer> {
  const res = await fetch(`${url}/.well-known/jwks.json`, init);
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    keys: res.status === 200 && text ? (JSON.parse(text) as { keys: Record<string, string>[] }).keys : [],
  };
}

/** Verifies a compact JWS with a published JWK, independently of the service's code. */
function verifiesWith(token: string, jwk: Record<string, string>): boolean {
  const [h, p, s] = token.split(".");
  const key = createPublicKey({ key: jwk, format: "jwk" });
  const sig = Buffer.from(s, "base64url");
  return jwk.kty === "EC"
    ? verify("sha256", Buffer.from(`${h}.${p}`), { key, dsaEncoding: "ieee-p1363" }, sig)
    : verify("sha256", Buffer.from(`${h}.${p}`), key, sig);
}

describe("with an RSA key", () => {
  it("signs RS256 with the key's RFC 7638 thumbprint as kid, and the token works", async () => {
    expect(headerOf(rsaToken)).toEqual({ alg: "RS256", typ: "at+jwt", kid: thumbprint(rsa.publicKey) });
    expect((await grpc.call(getCurrentUser, {}, rsaToken)).user?.email).toBe(ADMIN.email);
  });

  it("publishes the public key at /.well-known/jwks.json, with its media type and a cache lifetime", async () => {
    const res = await jwks(rsaServer.url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/jwk-set+json");
    expect(res.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
    expect(res.keys).toHaveLength(1);
    const [jwk] = res.keys;
    expect(Object.keys(jwk).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
    expect(jwk).toMatchObject({ kty: "RSA", alg: "RS256", use: "sig", kid: thumbprint(rsa.publicKey) });
    expect(verifiesWith(rsaToken, jwk)).toBe(true);
  });

  it("answers a conditional GET with 304, HEAD without a body, and other methods with 405", async () => {
    const first = await jwks(rsaServer.url);
    const etag = first.headers.get("etag") ?? "";
    expect(etag).not.toBe("");
    expect((await fetch(`${rsaServer.url}/.well-known/jwks.json`, { headers: { "if-none-match": etag } })).status).toBe(
      304,
    );
    const head = await fetch(`${rsaServer.url}/.well-known/jwks.json`, { method: "HEAD" });
    expect([head.status, await head.text()]).toEqual([200, ""]);
    const post = await fetch(`${rsaServer.url}/.well-known/jwks.json`, { method: "POST" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
  });

  const kid = () => thumbprint(rsa.publicKey);
  const attacks: { name: string; token: () => string }[] = [
    {
      name: "HS256 signed with the RSA public key (PEM) as the HMAC secret",
      token: () => signToken(validClaims(adminId, "ROLE_ADMIN"), "HS256", rsa.publicPem, { kid: kid() }),
    },
    {
      name: "HS256 with the public key as secret and no kid",
      token: () => signToken(validClaims(adminId, "ROLE_ADMIN"), "HS256", rsa.publicPem),
    },
    {
      name: "HS256 with the public key's DER as secret",
      token: () =>
        signToken(
          validClaims(adminId, "ROLE_ADMIN"),
          "HS256",
          rsa.publicKey.export({ type: "spki", format: "der" }).toString("latin1"),
          { kid: kid() },
        ),
    },
    {
      name: "HS256 with JWT_SECRET (the symmetric default is off)",
      token: () => forge(validClaims(adminId, "ROLE_ADMIN")),
    },
    {
      name: "RS384 with the right key and kid",
      token: () => signToken(validClaims(adminId), "RS384", rsa.privateKey, { kid: kid() }),
    },
    {
      name: "PS256 with the right key and kid",
      token: () => signToken(validClaims(adminId), "PS256", rsa.privateKey, { kid: kid() }),
    },
    {
      name: "RS256 by another key claiming the right kid",
      token: () => signToken(validClaims(adminId, "ROLE_ADMIN"), "RS256", stranger.privateKey, { kid: kid() }),
    },
    {
      name: "RS256 by another key with its own kid",
      token: () =>
        signToken(validClaims(adminId, "ROLE_ADMIN"), "RS256", stranger.privateKey, {
          kid: thumbprint(stranger.publicKey),
        }),
    },
    {
      name: "RS256 with the right key but no kid",
      token: () => signToken(validClaims(adminId), "RS256", rsa.privateKey),
    },
    {
      name: "RS256 with the right key and an embedded jwk header",
      token: () =>
        signToken(validClaims(adminId, "ROLE_ADMIN"), "RS256", stranger.privateKey, {
          jwk: stranger.publicKey.export({ format: "jwk" }),
        }),
    },
    {
      name: "alg none with the right kid",
      token: () =>
        unsigned(validClaims(adminId, "ROLE_ADMIN")).replace(
          /^[^.]+/,
          Buffer.from(JSON.stringify({ alg: "none", kid: kid() })).toString("base64url"),
        ),
    },
    {
      name: "RS256 with the right key and kid but a wrong aud",
      token: () => signToken({ ...validClaims(adminId), aud: "other" }, "RS256", rsa.privateKey, { kid: kid() }),
    },
  ];

  it.each(attacks)("refuses $name", async ({ token }) => {
    const t = token();
    await expectInvalidToken(grpc.call(getCurrentUser, {}, t), t);
    await expectInvalidToken(clients(rsaServer.url, "connect-json-h1", () => t).auth.getCurrentUser({}), t);
  });

  it("accepts RS256 with the right key and kid (the attacks above differ only in what they test)", async () => {
    const t = signToken(validClaims(adminId), "RS256", rsa.privateKey, { kid: kid() });
    expect((await grpc.call(getCurrentUser, {}, t)).user?.id).toBe(adminId);
  });
});

describe("with an EC P-256 key", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ JWT_PRIVATE_KEY_FILE: ec.privateFile });
  });
  afterAll(() => server?.close());

  it("signs ES256 with a thumbprint kid, publishes the key, and refuses other EC keys and RS256", async () => {
    const token = await login(server.url, ADMIN.email, ADMIN.password);
    expect(headerOf(token)).toEqual({ alg: "ES256", typ: "at+jwt", kid: thumbprint(ec.publicKey) });
    const { keys: published } = await jwks(server.url);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({
      kty: "EC",
      crv: "P-256",
      alg: "ES256",
      use: "sig",
      kid: thumbprint(ec.publicKey),
    });
    expect(published[0]).not.toHaveProperty("d");
    expect(verifiesWith(token, published[0])).toBe(true);
    const c = (t: string) => clients(server.url, "grpc", () => t).auth.getCurrentUser({});
    expect((await c(token)).user?.email).toBe(ADMIN.email);
    const id = String(payloadOf(token).sub);
    const other = keys.pair("ec");
    await expectInvalidToken(
      c(signToken(validClaims(id, "ROLE_ADMIN"), "ES256", other.privateKey, { kid: thumbprint(ec.publicKey) })),
    );
    await expectInvalidToken(c(signToken(validClaims(id), "HS256", ec.publicPem, { kid: thumbprint(ec.publicKey) })));
    await expectInvalidToken(c(signToken(validClaims(id), "RS256", rsa.privateKey, { kid: thumbprint(ec.publicKey) })));
  });
});

describe("a key rotation", () => {
  it("keeps tokens of the previous key valid while JWT_PREVIOUS_PUBLIC_KEY_FILE lists it, and only then", async () => {
    // Before: the RSA server issued rsaToken. After: the EC key signs, the RSA public key is listed.
    const rotated = await startTestServer({
      DATABASE_URL: rsaServer.databaseUrl,
      JWT_PRIVATE_KEY_FILE: ec.privateFile,
      JWT_PREVIOUS_PUBLIC_KEY_FILE: rsa.publicFile,
    });
    const withoutPrevious = await startTestServer({
      DATABASE_URL: rsaServer.databaseUrl,
      JWT_PRIVATE_KEY_FILE: ec.privateFile,
    });
    try {
      const onRotated = (t: string) => clients(rotated.url, "grpc", () => t).auth.getCurrentUser({});
      expect((await onRotated(rsaToken)).user?.id).toBe(adminId);
      const fresh = await login(rotated.url, ADMIN.email, ADMIN.password);
      expect(headerOf(fresh)).toMatchObject({ alg: "ES256", kid: thumbprint(ec.publicKey) });
      expect((await onRotated(fresh)).user?.id).toBe(adminId);
      // The JWK Set lists the signing key first, then the previous one.
      expect((await jwks(rotated.url)).keys.map((k) => [k.kid, k.alg])).toEqual([
        [thumbprint(ec.publicKey), "ES256"],
        [thumbprint(rsa.publicKey), "RS256"],
      ]);
      // The previous key verifies only: a token it signs under another algorithm is still refused.
      await expectInvalidToken(
        onRotated(signToken(validClaims(adminId), "HS256", rsa.publicPem, { kid: thumbprint(rsa.publicKey) })),
      );
      // Without the previous key listed, its tokens are dead.
      await expectInvalidToken(clients(withoutPrevious.url, "grpc", () => rsaToken).auth.getCurrentUser({}));
      expect((await clients(withoutPrevious.url, "grpc", () => fresh).auth.getCurrentUser({})).user?.id).toBe(adminId);
    } finally {
      await rotated.close();
      await withoutPrevious.close();
    }
  });
});

describe("with HS256 (no key file)", () => {
  it("publishes nothing: /.well-known/jwks.json is 404, and tokens carry no kid", async () => {
    const server = await startTestServer();
    try {
      expect((await jwks(server.url)).status).toBe(404);
      const token = await login(server.url, ADMIN.email, ADMIN.password);
      expect(headerOf(token)).toEqual({ alg: "HS256", typ: "at+jwt" });
      expect(JWT_SECRET.length).toBeGreaterThanOrEqual(32);
    } finally {
      await server.close();
    }
  });
});
