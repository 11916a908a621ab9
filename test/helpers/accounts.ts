/**
 * Accounts for tests, made through the public API only: the bootstrap admin's token, and regular users
 * created with CreateUser and logged in with Login, as a real client would.
 */
import { randomUUID } from "node:crypto";
import type { User } from "../../gen/user/v1/user_pb.js";
import { clients } from "./clients.ts";
import { ADMIN } from "./server.ts";

/** A unique, valid email address (a prefix makes failures easier to read). */
export function uniqueEmail(prefix = "user"): string {
  return `${prefix}-${randomUUID().slice(0, 8)}@example.com`;
}

/** Logs in over gRPC (connect-node) and returns the access token. */
export async function login(url: string, email: string, password: string): Promise<string> {
  const res = await clients(url, "grpc").auth.login({ email, password });
  const token = res.tokens?.accessToken;
  if (!token) throw new Error("Login returned no access token");
  return token;
}

/** The bootstrap admin's access token. */
export function adminToken(url: string): Promise<string> {
  return login(url, ADMIN.email, ADMIN.password);
}

/** A regular user created by the admin, with its password and an access token of its own. */
export interface Member {
  user: User;
  email: string;
  password: string;
  token: string;
}

/** Creates a ROLE_USER account with a password through CreateUser, then logs it in. */
export async function createMember(
  url: string,
  admin: string,
  opts: { prefix?: string; displayName?: string; labels?: Record<string, string> } = {},
): Promise<Member> {
  const email = uniqueEmail(opts.prefix ?? "member");
  const password = `pw-${randomUUID()}`;
  const res = await clients(url, "grpc", () => admin).users.createUser({
    user: { email, displayName: opts.displayName ?? "A Member", labels: opts.labels ?? {} },
    password,
  });
  if (!res.user) throw new Error("CreateUser returned no user");
  return { user: res.user, email, password, token: await login(url, email, password) };
}

/** Creates a user without a password (cannot log in) and returns it. */
export async function createPlainUser(url: string, admin: string, prefix = "plain"): Promise<User> {
  const res = await clients(url, "grpc", () => admin).users.createUser({
    user: { email: uniqueEmail(prefix), displayName: `User ${prefix}` },
  });
  if (!res.user) throw new Error("CreateUser returned no user");
  return res.user;
}
