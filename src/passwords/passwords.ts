/**
 * Password hashing with argon2id at the contract's parameters (19 MiB, 2 iterations, parallelism 1). Hashes
 * are computed on low-priority worker threads (hash-pool.ts), so hashing never blocks the event loop nor
 * takes the CPU it needs. Passwords are NFKC-normalized first, so the same password typed on two keyboards
 * verifies.
 *
 * Imported hashes set the cost of every login of their user, an anonymous caller's included, so their cost
 * is capped (HASH_COST_CAPS): an import above it fails its row, and a stored hash above it (written before
 * the caps existed) is never computed: it verifies nothing, like a wrong password (after the time a normal
 * check takes), and is reported to the log without the hash.
 */
import { HASH_THREADS, HashJobError, type HashSlot, hashPool } from "./hash-pool.ts";

// algorithm 2 is Algorithm.Argon2id (a const enum, which erasable TypeScript cannot import).
const params = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** The most a stored hash may cost: argon2id memory (KiB), iterations and lanes; bcrypt's log2 rounds. */
const HASH_COST_CAPS = { argon2Memory: 262_144, argon2Time: 10, argon2Parallelism: 16, bcryptCost: 14 };

/**
 * Hashes a password to a PHC string; `wait` queues it however full the queue is (bulk work that bounds itself);
 * `slot` uses a place reserved earlier (reserveHashSlot), so a step already taken is never refused half-way.
 */
export async function hashPassword(password: string, opts: { wait?: boolean; slot?: HashSlot } = {}): Promise<string> {
  return String(
    await hashPool.run(
      { op: "hash", password: password.normalize("NFKC"), options: params },
      { wait: opts.wait, slot: opts.slot },
    ),
  );
}

/**
 * Hashes many passwords (ImportUsers), in order, with at most two jobs per hashing thread in the pool at a
 * time (one running, one ready): bulk work is never refused by the queue's bound, and leaves it to logins.
 */
export async function hashPasswords(passwords: readonly string[]): Promise<string[]> {
  const hashes: string[] = new Array(passwords.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < passwords.length; i = next++) hashes[i] = await hashPassword(passwords[i], { wait: true });
  };
  await Promise.all(Array.from({ length: Math.min(2 * HASH_THREADS, passwords.length) }, lane));
  return hashes;
}

const argon2idPhc = /^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,4}),p=(\d{1,3})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{16,}$/;
const bcryptHash = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** The algorithm and parameters of a hash that costs more than HASH_COST_CAPS, or undefined. */
function costAboveCaps(phc: string): { algorithm: string; cost: string } | undefined {
  const c = HASH_COST_CAPS;
  const a = argon2idPhc.exec(phc);
  if (a && (Number(a[1]) > c.argon2Memory || Number(a[2]) > c.argon2Time || Number(a[3]) > c.argon2Parallelism))
    return { algorithm: "argon2id", cost: `m=${a[1]},t=${a[2]},p=${a[3]}` };
  const b = bcryptHash.exec(phc);
  if (b && Number(b[1]) > c.bcryptCost) return { algorithm: "bcrypt", cost: b[1] };
  return undefined;
}

/** What is wrong with a hash offered for import (its format, or a cost above the caps), or undefined. */
export function hashProblem(phc: string): string | undefined {
  if (!argon2idPhc.test(phc) && !bcryptHash.test(phc)) return "must be an argon2id PHC string or a bcrypt hash";
  const c = HASH_COST_CAPS;
  if (costAboveCaps(phc))
    return `costs more than this service verifies (argon2id at most m=${c.argon2Memory}, t=${c.argon2Time}, p=${c.argon2Parallelism}; bcrypt at most cost ${c.bcryptCost})`;
  return undefined;
}

/** True when a stored hash should be replaced by a fresh argon2id hash at the next successful login. */
export function needsRehash(phc: string): boolean {
  return bcryptHash.test(phc);
}

/** Where a stored hash that is too costly to verify is reported (set by the app to its logger). */
let reportCostlyHash: (algorithm: string, cost: string) => void = () => {};

/**
 * Sets the bound of the hashing queue (HASH_QUEUE_MAX; undefined: the default) and where to report stored
 * hashes above the caps. The pool is the process's, so this is the app's to call, once, at start.
 */
export function configurePasswordHashing(opts: {
  maxWaiting: number | undefined;
  onCostlyHash: (algorithm: string, cost: string) => void;
}): void {
  hashPool.limit(opts.maxWaiting);
  reportCostlyHash = opts.onCostlyHash;
}

/** Hashes waiting for a thread (and places held for them), for the metrics. */
export function hashQueueLength(): number {
  return hashPool.waiting();
}

/** Holds a place in the hashing queue for a check to come; throws RATE_LIMITED when the queue is full. */
export function reserveHashSlot(): HashSlot {
  return hashPool.reserve();
}

/**
 * Checks a password against a stored hash (argon2id PHC, or bcrypt from an import): false for a wrong
 * password and for a hash it cannot read or will not compute. A full hashing queue is not a wrong password:
 * it throws RATE_LIMITED (unless `slot` holds a place).
 */
export async function verifyPassword(phc: string, password: string, slot?: HashSlot): Promise<boolean> {
  const costly = costAboveCaps(phc);
  if (costly) {
    reportCostlyHash(costly.algorithm, costly.cost);
    // The usual time spent, so the answer does not tell this account apart.
    return verifyAgainstDummy(password, slot);
  }
  const op = bcryptHash.test(phc) ? "verify-bcrypt" : "verify-argon2";
  try {
    return (await hashPool.run({ op, phc, password: password.normalize("NFKC") }, { slot })) === true;
  } catch (err) {
    if (err instanceof HashJobError) return false;
    throw err;
  }
}

let dummy: Promise<string> | undefined;

/**
 * Spends the same time as a real verification, for logins of unknown emails, so timing does not reveal
 * which emails have accounts.
 */
export async function verifyAgainstDummy(password: string, slot?: HashSlot): Promise<false> {
  dummy ??= hashPassword("dummy password that matches nothing", { wait: true });
  await verifyPassword(await dummy, password, slot);
  return false;
}
