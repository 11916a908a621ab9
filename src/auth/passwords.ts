/**
 * Password hashing with argon2id at the contract's parameters (19 MiB, 2 iterations, parallelism 1). Hashes
 * are computed on low-priority worker threads (hash-pool.ts), so hashing never blocks the event loop nor
 * takes the CPU it needs. Passwords are NFKC-normalized first, so the same password typed on two keyboards
 * verifies.
 */
import { hashPool } from "./hash-pool.ts";

// algorithm 2 is Algorithm.Argon2id (a const enum, which erasable TypeScript cannot import).
const params = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Hashes a password to a PHC string. */
export async function hashPassword(password: string): Promise<string> {
  return String(await hashPool.run({ op: "hash", password: password.normalize("NFKC"), options: params }));
}

const argon2idPhc = /^\$argon2id\$v=19\$m=\d{1,7},t=\d{1,4},p=\d{1,3}\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;
const bcryptHash = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** True for the hash formats ImportUsers accepts: argon2id PHC strings and bcrypt. */
export function isAcceptedHash(phc: string): boolean {
  return argon2idPhc.test(phc) || bcryptHash.test(phc);
}

/** True when a stored hash should be replaced by a fresh argon2id hash at the next successful login. */
export function needsRehash(phc: string): boolean {
  return bcryptHash.test(phc);
}

/** Checks a password against a stored hash (argon2id PHC, or bcrypt from an import); false for a hash it cannot read. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    const op = bcryptHash.test(phc) ? "verify-bcrypt" : "verify-argon2";
    return (await hashPool.run({ op, phc, password: password.normalize("NFKC") })) === true;
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
