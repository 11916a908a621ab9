/**
 * Password hashing with argon2id at the contract's parameters (19 MiB, 2 iterations, parallelism 1). The
 * native hasher runs on libuv's thread pool, so hashing never blocks the event loop. Passwords are
 * NFKC-normalized first, so the same password typed on two keyboards verifies.
 */
import { hash, verify } from "@node-rs/argon2";

// algorithm 2 is Algorithm.Argon2id (a const enum, which erasable TypeScript cannot import).
const params = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Hashes a password to a PHC string. */
export function hashPassword(password: string): Promise<string> {
  return hash(password.normalize("NFKC"), params);
}

/** Checks a password against a stored PHC hash; false for a hash it cannot read. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password.normalize("NFKC"));
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/**
 * Spends the same time as a real verification, for logins of unknown emails, so timing does not reveal
 * which emails have accounts.
 */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummy ??= hashPassword("dummy password that matches nothing");
  await verifyPassword(await dummy, password);
  return false;
}
