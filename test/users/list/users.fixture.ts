/**
 * Deterministic synthetic users for the SQL tests: few distinct times, names and labels (so sort keys tie
 * and filters are selective), names holding LIKE wildcards, quotes, backslashes and accents, emails that
 * differ only by case (deleted users may share a live user's address), and microsecond timestamps.
 */
import { query } from "../../helpers/database.ts";

/** A user as the tests know it; times are epoch microseconds, exact where a JS Date is not. */
export interface TestUser {
  id: string;
  email: string;
  display_name: string;
  role: "user" | "admin";
  state: "active" | "suspended" | "deleted";
  labels: Record<string, string>;
  create_time: bigint;
  update_time: bigint;
}

const NAMES = [
  "Ann",
  "ann",
  "Bob",
  "Zoë",
  "Ünal",
  "al_ice",
  "100% Bob",
  "back\\slash",
  'Quote"d',
  "O'Brien",
  "éclair",
  "Ann Lee",
];
const LABEL_KEYS = ["team", "env", "cost-center", "a.b"];
const LABEL_VALUES = ["core", "edge", "x%y", "under_score", "", "Core"];
const BASE = 1_767_225_600_000_000n; // 2026-01-01T00:00:00Z

/** A seeded generator (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Formats epoch microseconds as RFC 3339 UTC with six fractional digits. */
export function rfc3339(micros: bigint): string {
  const ms = Number(micros / 1000n);
  const frac = String(micros % 1_000_000n).padStart(6, "0");
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}Z`;
}

/** `count` users from `seed`. */
export function makeUsers(count: number, seed: number): TestUser[] {
  const next = random(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(next() * 16).toString(16)).join("");
  const users: TestUser[] = [];
  for (let i = 0; i < count; i++) {
    const state = next() < 0.7 ? "active" : pick(["suspended", "deleted"] as const);
    const shared = state === "deleted" && users.length > 0 && next() < 0.5;
    const local = `${pick(["alice", "bob", "carol", "dave_x", "eve"])}${i}`;
    const email = shared
      ? pick(users).email.toUpperCase()
      : `${next() < 0.3 ? local.toUpperCase() : local}@${pick(["example.com", "Test.org"])}`;
    const labels: Record<string, string> = {};
    for (const key of LABEL_KEYS) if (next() < 0.4) labels[key] = pick(LABEL_VALUES);
    const create = BASE + BigInt(Math.floor(next() * 60)) * 1_000_123n;
    users.push({
      id: `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`,
      email,
      display_name: next() < 0.5 ? pick(NAMES) : `${pick(NAMES)} ${Math.floor(next() * 5)}`,
      role: next() < 0.2 ? "admin" : "user",
      state,
      labels,
      create_time: create,
      update_time: create + BigInt(Math.floor(next() * 3)) * 7n,
    });
  }
  return users;
}

/** Inserts users with one raw statement. */
export async function insertUsers(url: string, users: readonly TestUser[]): Promise<void> {
  const column = <T>(f: (u: TestUser) => T) => users.map(f);
  await query(
    url,
    `insert into users (id, email, display_name, role, state, labels, create_time, update_time, delete_time)
     select id, email, name, role, state, labels, ct, ut, case when state = 'deleted' then ut end
     from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::timestamptz[])
       as t(id, email, name, role, state, labels, ct, ut)`,
    [
      column((u) => u.id),
      column((u) => u.email),
      column((u) => u.display_name),
      column((u) => u.role),
      column((u) => u.state),
      column((u) => JSON.stringify(u.labels)),
      column((u) => rfc3339(u.create_time)),
      column((u) => rfc3339(u.update_time)),
    ],
  );
}
