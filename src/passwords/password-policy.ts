/**
 * What a new password must not be, beyond its 8 to 128 characters (checked by the proto's validation): one
 * of the 10,000 most common passwords, or the user's own email (NIST 800-63B §5.1.1.2, "passwords obtained
 * from previous breach corpuses" and "context-specific words"). Both compare after NFKC (which passwords.ts
 * applies before hashing) and lower-casing, so "PassWord123" and a full-width "ｐａｓｓｗｏｒｄ１２３" are refused too.
 *
 * The list is the ranked password dictionary of zxcvbn-ts (`@zxcvbn-ts/language-common`, MIT, maintained,
 * ~49,000 passwords from breach corpora, most common first), read from the package's own file at run time,
 * so a dependency update refreshes it and nothing is copied into this repository (the package is a production
 * dependency, installed beside dist/server in the image). It is loaded on first use: ~10 ms, and a Set that
 * keeps ~0.7 MB of heap (measured with --expose-gc, heap after minus before).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ServiceError } from "../rpc/errors.ts";

/** How many of the ranked list's passwords are refused. */
export const COMMON_PASSWORD_COUNT = 10_000;

let common: Set<string> | undefined;

const canonical = (s: string) => s.normalize("NFKC").toLowerCase();

/** The refused passwords, canonical; read once, on first use (a process that never sets a password never pays). */
function commonPasswords(): Set<string> {
  if (!common) {
    const file = createRequire(import.meta.url).resolve("@zxcvbn-ts/language-common/src/passwords.json");
    const ranked = JSON.parse(readFileSync(file, "utf8")) as string[];
    common = new Set(ranked.slice(0, COMMON_PASSWORD_COUNT).map(canonical));
  }
  return common;
}

/** Why `password` is too weak to be set (for a user with `email`, when known), or undefined when it is not. */
export function weakPasswordProblem(password: string, email?: string): string | undefined {
  const key = canonical(password);
  if (commonPasswords().has(key)) return "is one of the 10,000 most common passwords; choose another";
  if (email !== undefined && key === canonical(email.trim())) return "must not be the account's email";
  return undefined;
}

/** Throws INVALID_ARGUMENT, reason WEAK_PASSWORD, with a violation on `field`, when the password is too weak. */
export function assertStrongPassword(password: string, opts: { email?: string; field: string }): void {
  const problem = weakPasswordProblem(password, opts.email);
  if (problem) {
    throw new ServiceError("WEAK_PASSWORD", `${opts.field}: ${problem}`, {
      violations: [{ field: opts.field, description: problem }],
    });
  }
}
