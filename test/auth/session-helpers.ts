/**
 * What the session tests share: logging in from a given user agent (and X-Forwarded-For), the session id of
 * an access token, and the checks that a revoked session's tokens are dead on every replica.
 */
import { Code } from "@connectrpc/connect";
import { expect } from "vitest";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { clients, failure, type TransportName } from "../helpers/clients.ts";
import type { TestServer } from "../helpers/server.ts";
import { payloadOf } from "../helpers/tokens.ts";

/** The auth client of a server, with a token and extra headers. */
export const authOf = (
  s: TestServer,
  token?: string,
  headers: Record<string, string> = {},
  name: TransportName = "grpc",
) => clients(s.url, name, token ? () => token : undefined, headers).auth;

/** Logs in (a new session) from `userAgent`; returns its tokens. */
export async function loginFrom(
  s: TestServer,
  who: { email: string; password: string },
  userAgent = "session-tests/1.0",
  headers: Record<string, string> = {},
): Promise<Tokens> {
  const res = await authOf(s, undefined, { "user-agent": userAgent, ...headers }).login(who);
  if (!res.tokens) throw new Error("no tokens");
  return res.tokens;
}

/** The session (`sid`) of an access token. */
export const sidOf = (accessToken: string) => String(payloadOf(accessToken).sid);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The refresh token no longer rotates, on any of `servers`. */
export async function expectDeadRefresh(servers: TestServer[], refreshToken: string): Promise<void> {
  for (const s of servers) {
    const f = await failure(authOf(s).refreshToken({ refreshToken }));
    expect([Code[f.code], f.reason]).toEqual(["Unauthenticated", "UNAUTHENTICATED"]);
  }
}

/**
 * Every access token is refused on the first server at once and on every other within a second of `since`
 * (their poll); returns how long the slowest took (ms).
 */
export async function expectDeadAccess(servers: TestServer[], tokens: string[], since: number): Promise<number> {
  let slowest = 0;
  for (const token of tokens) {
    for (const [i, s] of servers.entries()) {
      for (;;) {
        const f = await failure(authOf(s, token).getCurrentUser({})).catch(() => undefined);
        if (f) {
          expect([Code[f.code], f.reason, f.message]).toEqual([
            "Unauthenticated",
            "UNAUTHENTICATED",
            "invalid or revoked token",
          ]);
          slowest = Math.max(slowest, performance.now() - since);
          break;
        }
        expect(i, "the revoking replica still accepts the token").toBeGreaterThan(0);
        expect(performance.now() - since, "a token still works after a second").toBeLessThan(1000);
        await sleep(20);
      }
    }
  }
  return slowest;
}

/** The token still works on every server. */
export async function expectLiveAccess(servers: TestServer[], token: string): Promise<void> {
  for (const s of servers) expect((await authOf(s, token).getCurrentUser({})).user?.id).toBeTruthy();
}
