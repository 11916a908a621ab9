/**
 * Seeds N realistic users with one `INSERT ... SELECT ... FROM generate_series` (after the service's
 * migrations and the bench admin, via bench/seed.ts with zero of its own users):
 *
 * - random v4 ids (`gen_random_uuid()`), so id order is not insertion order, as in production;
 * - `first.last.<i>@<domain>` emails and `First Last` display names from 64 x 64 common names;
 * - ~0.1 % admins; ~5 % suspended and ~2 % soft-deleted users;
 * - labels `team` (team-0 .. team-99), `plan` (free 70 %, pro 25 %, enterprise 5 %), `region` (4), and
 *   `cohort` on ~30 % of users;
 * - create times spread over 2023-2025 with microseconds, update times after them, a PHC password hash.
 *
 * The secondary indexes are dropped during the insert and re-created from their own definitions afterwards
 * (3-4x faster than maintaining them row by row), then the table is ANALYZEd. Seeding an already seeded
 * database (BENCH_DATABASE_URL) adds nothing.
 */
import pg from "pg";
import { seed as seedMigrationsAndAdmin } from "../seed.ts";

const FIRST = `James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan
  Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Margaret Donald Sandra Steven
  Ashley Paul Kimberly Andrew Emily Joshua Donna Kenneth Michelle Kevin Carol Brian Amanda George Melissa Timothy
  Deborah Ronald Stephanie Jason Rebecca Edward Sharon Jeffrey Laura Ryan Cynthia Jacob Amy Gary Kathleen Nicholas
  Angela Eric Shirley`.split(/\s+/);
const LAST = `Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
  Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson
  Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell
  Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy`.split(
  /\s+/,
);
const DOMAINS = [
  "gmail.com",
  "outlook.com",
  "yahoo.com",
  "icloud.com",
  "proton.me",
  "acme.io",
  "example.org",
  "fastmail.com",
];
const REGIONS = ["eu-west", "us-east", "us-west", "ap-south"];

/** A PHC string of the right shape and length (nobody logs in as a bench user). */
const PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2g$0Lq3hXcuRkX9T2d1m7kP4oWc8v0kq0y7Q2gq0Jb3Zc8";

const insertUsers = `
  insert into users (id, email, display_name, role, state, labels, password_hash, version,
                     create_time, update_time, delete_time, tokens_valid_after)
  select gen_random_uuid(),
         lower(f) || '.' || lower(l) || '.' || i || '@' || d,
         f || ' ' || l,
         case when i % 1000 = 7 then 'admin' else 'user' end,
         st, lbl, $5, 1 + (r3 * 6)::int, ct, ut,
         case when st = 'deleted' then ut end,
         case when st <> 'active' then ut end
  from (
    select i, f, l, d, ct, lbl,
           case when r1 < 0.02 then 'deleted' when r1 < 0.07 then 'suspended' else 'active' end as st,
           ct + (r3 * interval '400 days') as ut, r3
    from (
      select i,
             ($2::text[])[1 + (i * 7919) % 64] as f,
             ($3::text[])[1 + ((i / 64) * 104729) % 64] as l,
             ($4::text[])[1 + (i * 31) % 8] as d,
             timestamptz '2023-01-01 00:00:00Z' + random() * interval '1095 days' as ct,
             jsonb_strip_nulls(jsonb_build_object(
               'team', 'team-' || floor(random() * 100)::int,
               'plan', case when r2 < 0.7 then 'free' when r2 < 0.95 then 'pro' else 'enterprise' end,
               'region', ($6::text[])[1 + floor(random() * 4)::int],
               'cohort', case when random() < 0.3 then '2024-q' || (1 + floor(random() * 4)::int) end)) as lbl,
             r1, r3
      from (select i, random() as r1, random() as r2, random() as r3 from generate_series(1, $1::bigint) as i) g
    ) x
  ) y`;

/** Migrations, the bench admin, and `users` realistic users (unless at least that many exist). */
export async function seedUsers(databaseUrl: string, users: number, log: (line: string) => void): Promise<void> {
  await seedMigrationsAndAdmin(databaseUrl, 0);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>("select count(*) as n from users");
    if (Number(rows[0].n) >= users) {
      log(`users already has ${rows[0].n} rows: not seeding`);
      return;
    }
    const started = performance.now();
    const { rows: indexes } = await client.query<{ name: string; def: string }>(
      `select indexname as name, indexdef as def from pg_indexes
        where schemaname = current_schema() and tablename = 'users'
          and indexname not in (select conname from pg_constraint where conrelid = 'users'::regclass)`,
    );
    await client.query("set maintenance_work_mem = '256MB'");
    await client.query("select setseed(0.4242)");
    await client.query("begin");
    for (const ix of indexes) await client.query(`drop index ${client.escapeIdentifier(ix.name)}`);
    await client.query(insertUsers, [users, FIRST, LAST, DOMAINS, PASSWORD_HASH, REGIONS]);
    const inserted = performance.now();
    for (const ix of indexes) await client.query(ix.def);
    await client.query("commit");
    const indexed = performance.now();
    await client.query("vacuum (analyze) users");
    log(
      `seeded ${users} users: insert ${Math.round(inserted - started)} ms, ${indexes.length} indexes ` +
        `${Math.round(indexed - inserted)} ms, vacuum analyze ${Math.round(performance.now() - indexed)} ms`,
    );
  } catch (err) {
    await client.query("rollback").catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}
