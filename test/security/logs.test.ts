/**
 * Nothing secret reaches the log. A server logging at debug level is driven through every AuthService
 * method, successes and failures, over gRPC, Connect JSON and gRPC-web (plus bad bearer tokens and a
 * stolen-token replay); then the captured log text must contain none of the passwords sent, none of the
 * access or refresh tokens (nor their signatures), no argon2 hash or its salt, and no stored refresh-token
 * hash, while it does hold a line for every method called (so the log really was captured).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { uniqueEmail } from "../helpers/accounts.ts";
import { clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
const secrets = new Set<string>();

function remember(...values: (string | undefined)[]): void {
  for (const v of values) if (v) secrets.add(v);
}

function rememberTokens(t: Tokens | undefined): void {
  if (!t) return;
  remember(t.accessToken, t.accessToken.split(".")[2], t.refreshToken);
}

/** Every auth method, successes and failures, over one transport. */
async function exercise(kind: TransportName): Promise<void> {
  const anon = clients(server.url, kind).auth;
  const email = uniqueEmail(`logs-${kind}`);
  const password = `first password ${kind}`;
  const next = `second password ${kind}`;
  const wrong = `wrong password ${kind}`;
  remember(password, next, wrong);

  const signUp = await anon.signUp({ email, password, displayName: "Logged" });
  rememberTokens(signUp.tokens);
  await failure(anon.signUp({ email, password, displayName: "Again" }));
  const login = await anon.login({ email, password });
  rememberTokens(login.tokens);
  await failure(anon.login({ email, password: wrong }));
  await failure(anon.login({ email: uniqueEmail("nobody"), password: wrong }));
  const refreshed = await anon.refreshToken({ refreshToken: login.tokens?.refreshToken ?? "" });
  rememberTokens(refreshed.tokens);
  await failure(anon.refreshToken({ refreshToken: login.tokens?.refreshToken ?? "" })); // reuse: revokes the family
  const authed = clients(server.url, kind, () => signUp.tokens?.accessToken).auth;
  await authed.getCurrentUser({});
  await failure(authed.changePassword({ currentPassword: wrong, newPassword: next }));
  const changed = await authed.changePassword({ currentPassword: password, newPassword: next });
  rememberTokens(changed.tokens);
  await failure(authed.getCurrentUser({})); // revoked by the change
  await failure(clients(server.url, kind, () => `${signUp.tokens?.accessToken}x`).auth.getCurrentUser({}));
  await anon.logout({ refreshToken: changed.tokens?.refreshToken ?? "" });
  await anon.logout({ refreshToken: "not-a-refresh-token-but-secret-looking" });
  remember("not-a-refresh-token-but-secret-looking");
}

beforeAll(async () => {
  server = await startTestServer({ LOG_LEVEL: "debug" });
  remember(ADMIN.password);
  for (const kind of ["grpc", "connect-json-h1", "grpc-web-h1"] as const) await exercise(kind);
  const hashes = await query<{ password_hash: string }>(
    server.databaseUrl,
    "select password_hash from users where password_hash is not null",
  );
  for (const { password_hash } of hashes)
    remember(password_hash, password_hash.split("$").at(-1), password_hash.split("$").at(-2));
  const refresh = await query<{ h: string; b: string }>(
    server.databaseUrl,
    "select encode(token_hash, 'hex') as h, encode(token_hash, 'base64') as b from refresh_tokens",
  );
  for (const { h, b } of refresh) remember(h, b);
}, 60_000);
afterAll(() => server?.close());

describe("the log of every auth method", () => {
  it("was captured: it holds a line for each method", () => {
    const methods = new Set(server.logs.map((l) => String(l.method ?? "")));
    for (const m of ["SignUp", "Login", "RefreshToken", "Logout", "GetCurrentUser", "ChangePassword"]) {
      expect(methods.has(`auth.v1.AuthService/${m}`), m).toBe(true);
    }
  });

  it("holds no password, token, token signature, argon2 hash, salt or refresh-token hash", () => {
    const text = server.logText();
    expect(secrets.size).toBeGreaterThan(30);
    const leaked = [...secrets].filter((s) => text.includes(s));
    expect(leaked).toEqual([]);
    expect(text).not.toMatch(/\$argon2(id|i|d)\$/);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/); // no JWT of any kind
  });
});
