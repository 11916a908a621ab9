/**
 * First start: when no admin exists, create one from ADMIN_EMAIL / ADMIN_PASSWORD, generating a password
 * (reported once through `announce`) when none is configured.
 */
import { randomBytes } from "node:crypto";
import { hashPassword } from "../auth/passwords.ts";
import { ServiceError } from "../errors.ts";
import type { UserRepository } from "./user.repository.ts";

/** Creates the bootstrap admin if needed; returns its email when one was created. */
export async function ensureAdmin(
  users: UserRepository,
  opts: {
    email: string;
    password: string | undefined;
    announce: (email: string, generatedPassword: string | undefined) => void;
  },
): Promise<string | undefined> {
  if (await users.hasAdmin()) return undefined;
  const password = opts.password ?? randomBytes(15).toString("base64url");
  try {
    await users.create({
      email: opts.email,
      displayName: "Administrator",
      role: "admin",
      labels: {},
      passwordHash: await hashPassword(password),
    });
  } catch (err) {
    // Another replica created it first, or a non-admin holds the address: either way, nothing to do here.
    if (err instanceof ServiceError && err.reason === "EMAIL_TAKEN") return undefined;
    throw err;
  }
  opts.announce(opts.email, opts.password === undefined ? password : undefined);
  return opts.email;
}
