/**
 * Seeds a database for the benchmark: the service's migrations, then N users and one admin, in a single
 * `INSERT ... SELECT ... FROM generate_series` (100,000 users take about a second).
 *
 * User i has the id `b0000000-0000-4000-8000-<i as 12 decimal digits>`: a valid UUID whose varying part is
 * decimal digits only. The load generator rewrites those digits in its request body while it runs (see
 * rotating-body.ts); should it ever read a half-written id, the digits it sees still name a seeded user.
 *
 * Usage: `node bench/seed.ts <DATABASE_URL> [N]` (or import `seed`). Seeding twice adds nothing.
 */
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import pg from "pg";
import { newApiKeySecret } from "../src/auth/api-key-secret.ts";
import { createOrm, migrate } from "../src/db/orm.ts";

/** The id prefix of every bench user; the last 12 characters are the user's index in decimal. */
const ID_PREFIX = "b0000000-0000-4000-8000-";

/** Number of decimal digits at the end of a bench user id. */
export const ID_DIGITS = 12;

/** The bench admin (role admin, no password: the benchmark forges its tokens). */
export const BENCH_ADMIN = { id: `${ID_PREFIX}a00000000000`, email: "bench-admin@bench.example" } as const;

/** The id of bench user `i`. */
/**
 * An access token for BENCH_ADMIN, as the service issues them (RFC 9068 `typ: at+jwt`, a session id `sid`),
 * signed with the benchmark's secret: the benchmarks measure calls, not logins.
 */
export function benchAdminToken(
  env: { JWT_SECRET: string; JWT_ISSUER: string; JWT_AUDIENCE: string },
  ttlSeconds: number,
): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign(
    { sub: BENCH_ADMIN.id, role: "ROLE_ADMIN", iat: now, exp: now + ttlSeconds, jti: randomUUID(), sid: randomUUID() },
    env.JWT_SECRET,
    {
      algorithm: "HS256",
      header: { alg: "HS256", typ: "at+jwt" },
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
    },
  );
}

/**
 * A new API key of BENCH_ADMIN, inserted as CreateApiKey would (the service loads it at start); the bench
 * admin's earlier bench keys are removed, so reseeding a database keeps one.
 */
export async function benchAdminApiKey(databaseUrl: string): Promise<string> {
  const { secret, hash, prefix } = newApiKeySecret();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("delete from api_keys where user_id = $1 and display_name = 'bench'", [BENCH_ADMIN.id]);
    await client.query(
      `insert into api_keys (id, user_id, display_name, prefix, secret_hash, create_time, update_time)
       values ($1, $2, 'bench', $3, $4, now(), now())`,
      [randomUUID(), BENCH_ADMIN.id, prefix, Buffer.from(hash, "base64url")],
    );
  } finally {
    await client.end();
  }
  return secret;
}

export function benchUserId(i: number): string {
  return ID_PREFIX + String(i).padStart(ID_DIGITS, "0");
}

/** The email of bench user `i`. */
export function benchUserEmail(i: number): string {
  return `user${i}@bench.example`;
}

/** The index of a bench user id, or undefined when the id is not one. */
export function benchUserIndex(id: string): number | undefined {
  return id.startsWith(ID_PREFIX) && /^\d+$/.test(id.slice(ID_PREFIX.length))
    ? Number(id.slice(ID_PREFIX.length))
    : undefined;
}

const insertUsers = `
  insert into users (id, email, display_name, role, state, labels, password_hash, version,
                     create_time, update_time, delete_time, tokens_valid_after)
  select ($2 || lpad(i::text, ${ID_DIGITS}, '0'))::uuid,
         'user' || i || '@bench.example',
         'Bench User ' || i,
         'user', 'active',
         jsonb_build_object('team', 'team-' || (i % 97), 'plan', case when i % 10 = 0 then 'pro' else 'free' end),
         null, 1 + i % 3,
         timestamptz '2025-01-01 00:00:00Z' + make_interval(secs => i * 1.25),
         timestamptz '2025-06-01 00:00:00Z' + make_interval(secs => i * 0.75),
         null, null
  from generate_series(0, $1::int - 1) as i
  on conflict (id) do nothing`;

const insertAdmin = `
  insert into users (id, email, display_name, role, state, labels, version, create_time, update_time)
  values ($1, $2, 'Bench Admin', 'admin', 'active', '{}', 1, now(), now())
  on conflict (id) do nothing`;

/** Applies the service's migrations, then inserts `users` bench users and the bench admin. */
export async function seed(databaseUrl: string, users: number): Promise<void> {
  const orm = await createOrm(databaseUrl, 1);
  try {
    await migrate(orm);
  } finally {
    await orm.close(true);
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(insertUsers, [users, ID_PREFIX]);
    await client.query(insertAdmin, [BENCH_ADMIN.id, BENCH_ADMIN.email]);
    await client.query("analyze users");
  } finally {
    await client.end();
  }
}

if (import.meta.main) {
  const [url, n = "100000"] = process.argv.slice(2);
  if (!url) {
    process.stderr.write("usage: node bench/seed.ts <DATABASE_URL> [N]\n");
    process.exit(2);
  }
  const started = performance.now();
  await seed(url, Number(n));
  process.stdout.write(`seeded ${n} users in ${Math.round(performance.now() - started)} ms\n`);
}
