/**
 * The signed-in session: tokens live in memory only (a reload signs out, but no script-readable storage
 * ever holds a refresh token), the access token is renewed with RefreshToken well before it expires, and a
 * call that meets an expired token (a laptop that slept through the renewal) is retried once after a
 * renewal. Refreshes are single-flight: refresh tokens rotate, and presenting a used one twice would make
 * the service revoke the whole session.
 */

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Tokens } from "../../gen/auth/v1/auth_service_pb.js";
import { Role, type User } from "../../gen/user/v1/user_pb.js";
import type { Api } from "./api.ts";
import { reasonOf } from "./errors.ts";

/** Signed out (with why, when the service ended the session) or signed in as `user`. */
export type SessionState =
  | { readonly kind: "signed-out"; readonly notice?: string }
  | { readonly kind: "signed-in"; readonly user: User };

/** The session. */
export interface Session {
  readonly state: SessionState;
  /** The current access token, for the bearer interceptor. */
  accessToken(): string | undefined;
  /** Signs in; throws the service's error for the form to explain. */
  login(email: string, password: string): Promise<void>;
  /** Revokes the session at the service (best effort) and forgets the tokens. */
  logout(): Promise<void>;
  /** Renews the access token now (joining a renewal in flight); false when the session is over. */
  refresh(): Promise<boolean>;
  /** Called on every state change; returns the unsubscribe function. */
  subscribe(listener: (state: SessionState) => void): () => void;
  /** Retries a unary call once after a renewal when the service says the token expired. */
  readonly retryInterceptor: Interceptor;
}

/** The methods that never carry an access token worth renewing (and must not wait on a renewal). */
const tokenless = new Set(["Login", "SignUp", "RefreshToken", "Logout"]);

/** The token's lifetime from its iat/exp claims, or undefined when the token is not a JWT we can read. */
function lifetimeMs(accessToken: string): number | undefined {
  try {
    const payload = accessToken.split(".")[1] ?? "";
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as { iat?: number; exp?: number };
    return claims.exp && claims.iat ? (claims.exp - claims.iat) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to renew: at three quarters of the token's lifetime. The lifetime comes from the JWT's own iat/exp,
 * so a browser clock that is off does not matter; the expire time is the fallback.
 */
export function renewAfterMs(tokens: Tokens, now = Date.now()): number {
  const lifetime =
    lifetimeMs(tokens.accessToken) ??
    (tokens.accessTokenExpireTime ? timestampMs(tokens.accessTokenExpireTime) - now : 60_000);
  return Math.max(1000, lifetime * 0.75);
}

/** Creates a signed-out session; `api` is read at every call so a transport switch applies at once. */
export function createSession(api: () => Api): Session {
  let tokens: Tokens | undefined;
  let state: SessionState = { kind: "signed-out" };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let renewing: Promise<boolean> | undefined;
  const listeners = new Set<(s: SessionState) => void>();

  const setState = (next: SessionState) => {
    state = next;
    for (const l of listeners) l(next);
  };
  const schedule = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => void refresh(), ms);
  };
  const adopt = (next: Tokens | undefined) => {
    if (!next) throw new Error("the service answered without tokens");
    tokens = next;
    schedule(renewAfterMs(next));
  };
  const end = (notice?: string) => {
    clearTimeout(timer);
    tokens = undefined;
    setState({ kind: "signed-out", notice });
  };

  function refresh(): Promise<boolean> {
    renewing ??= (async () => {
      const used = tokens;
      if (!used) return false;
      try {
        const res = await api().auth.refreshToken({ refreshToken: used.refreshToken });
        if (tokens !== used) return tokens !== undefined; // signed out (or in again) meanwhile
        adopt(res.tokens);
        return true;
      } catch (err) {
        if (tokens !== used) return tokens !== undefined;
        const code = ConnectError.from(err).code;
        if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
          end("Your session has ended. Please sign in again.");
          return false;
        }
        // The service is unreachable or busy: keep the tokens and try again shortly.
        schedule(5000);
        return false;
      }
    })().finally(() => {
      renewing = undefined;
    });
    return renewing;
  }

  const retryInterceptor: Interceptor = (next) => async (req) => {
    if (req.stream || tokenless.has(req.method.name)) return next(req);
    const sent = tokens?.accessToken;
    try {
      return await next(req);
    } catch (err) {
      if (reasonOf(err) !== "UNAUTHENTICATED" || tokens === undefined) throw err;
      // Another call may have renewed the token already; otherwise renew now.
      if (tokens.accessToken === sent && !(await refresh())) throw err;
      return next(req);
    }
  };

  return {
    get state() {
      return state;
    },
    accessToken: () => tokens?.accessToken,
    async login(email, password) {
      const res = await api().auth.login({ email, password });
      adopt(res.tokens);
      try {
        // Who am I, asked with the new token: proves the token works before the console opens.
        const me = await api().auth.getCurrentUser({});
        if (!me.user) throw new Error("The service did not say who you are.");
        // Every page of the console needs an admin; better to say so now than on every call.
        if (me.user.role !== Role.ADMIN)
          throw new Error(`This console is for administrators, and ${me.user.email} is not one.`);
        setState({ kind: "signed-in", user: me.user });
      } catch (err) {
        const held = tokens;
        clearTimeout(timer);
        tokens = undefined;
        if (held)
          void api()
            .auth.logout({ refreshToken: held.refreshToken })
            .catch(() => {});
        throw err;
      }
    },
    async logout() {
      const held = tokens;
      end();
      if (held)
        await api()
          .auth.logout({ refreshToken: held.refreshToken })
          .catch(() => {});
    },
    refresh,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    retryInterceptor,
  };
}
