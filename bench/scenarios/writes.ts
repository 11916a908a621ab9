/**
 * The `writes` scenario (issue 14): UpdateUser, CreateUser and DeleteUser through the service, each next to
 * pgbench running the same statements on the same database.
 *
 * PostgreSQL (embedded, data in a temporary directory, restarted once to preload pg_stat_statements; or
 * BENCH_DATABASE_URL) is seeded with N users (bench/seed.ts). Then, for each operation:
 *
 * 1. a fresh service process (the server bundle, as deployed, DB_POOL_MAX=10) gets a warm-up and a timed load
 *    with BENCH_WRITES_IN_FLIGHT calls in flight from a load-generating child process (writes-load.ts), every
 *    answer checked; the change log must have grown by exactly one row per successful call;
 * 2. with the service stopped, pgbench (`-M prepared`, BENCH_PGBENCH_CLIENTS clients, same warm-up and
 *    duration) runs the service's statements for that call as SQL (PGBENCH_SCRIPTS below), its commit
 *    trigger included; the change log must have grown by one row per transaction;
 * 3. pgbench runs the bare statement alone (no transaction block, no change log): the database's own speed
 *    for the row change.
 *
 * A CHECKPOINT precedes every load, so none starts with another's dirty pages. Server CPU comes from
 * /proc/<pid>/stat over the measured period, PostgreSQL's (postmaster and every backend) too when it is
 * local; pg_stat_statements shows what each load ran per call.
 *
 * Environment (all optional): BENCH_DATABASE_URL, BENCH_USERS (100000), BENCH_DURATION (10 s), BENCH_WARMUP
 * (3 s), BENCH_WRITES_OPS (comma list of update, create, delete), BENCH_WRITES_IN_FLIGHT (100),
 * BENCH_WRITES_CONNECTIONS (4), BENCH_PGBENCH_CLIENTS (10), BENCH_CPU_PROF (a directory: the service runs with
 * --cpu-prof and leaves writes-<op>.cpuprofile there; see bench/profile-summary.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../src/db/embedded-postgres.ts";
import { benchAdminToken, benchUserId, ID_DIGITS, seed } from "../seed.ts";
import { gitCommit, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";
import { type PgbenchResult, runPgbench, startSequencerLoop } from "./pg-bench.ts";
import { ensurePgbench, postmasterPid } from "./pg-cluster.ts";
import {
  enableStatements,
  readStatements,
  resetStatements,
  type StatementStat,
  statementsPerCall,
  statementsTable,
} from "./pg-statements.ts";
import { type LoadResult, runServiceLoad, stopLoads, type WriteOp } from "./writes-load.ts";

// =========================================================================================================
// The pgbench references: the service's write path, written out as SQL.
//
// THESE SCRIPTS MUST FOLLOW THE SERVICE'S WRITE PATH. They are what the service sends today for each call
// (src/users/pg/user-writes.ts and user-statements.ts, docs/adr/0015), each statement in autocommit:
// - UpdateUser, DeleteUser: the SELECT of the user by id (no lock: src/users/pg/user-reads.ts), then ONE
//   statement, a data-modifying CTE: the UPDATE of the row where id and version are those read (every column
//   set), the INSERT INTO user_changes of the snapshot after and before, from the updated row, and for a
//   delete the UPDATE of the user's sessions joined on the updated row (src/auth/session.repository.ts
//   revokeUserSessionsSql). When the service holds the user in its cache (the bench's users all are), it
//   skips the SELECT and writes from its copy: the script then reads the user in the same statement (an
//   `old` CTE), one round trip as for the service. The change log's sequencer (docs/adr/0016) runs beside
//   the script on its own connection, as the service's change feed runs it after the service's writes.
// - CreateUser without a request id: ONE statement, the INSERT of the user and of its change-log row.
// The service builds the snapshots in TypeScript and sends them as parameters; pgbench builds them in SQL
// (jsonb_build_object over the row). When the service's write path changes, change the script of that call
// here with it. The report lists the statements per call of the service and of each script
// (pg_stat_statements), so a script that no longer matches shows there.
//
// pgbench syntax: one SQL command per `;` (it may span lines), `\set` evaluates an expression, `\gset p_`
// after a query (instead of its `;`) stores its one row's columns as variables p_<column> (NULL as "").
// `\if` runs the lines up to `\endif` when its expression holds. Under `-M prepared` every :variable is a bind
// parameter. Variables given with -D by the scenario: users (update: ids are drawn from bench users
// 0..users-1), tag (create: unique emails per run), first, count, clients, seed, j=-1 (delete: each client
// walks its own slice of a pseudo-random permutation of the users first..first+count-1, so each is deleted
// at most once), j=-1 (create: a per-client counter).
// =========================================================================================================

const ID_PREFIX = benchUserId(0).slice(0, -ID_DIGITS);
/** The id of bench user `index` (an SQL expression) as SQL. */
const benchId = (index: string) => `('${ID_PREFIX}' || lpad((${index})::text, ${ID_DIGITS}, '0'))::uuid`;
/** The columns the service reads of a user (every column but password_hash). */
const USER_COLUMNS =
  "id, email, display_name, role, state, labels, version, create_time, update_time, delete_time, tokens_valid_after";
/** The change log's snapshot of a users row `u` (src/changes/change-log.ts UserSnapshot), built in SQL. */
const snapshotOf = (u: string) =>
  `jsonb_build_object('id', ${u}.id, 'email', ${u}.email, 'displayName', ${u}.display_name, 'role', ${u}.role,
      'state', ${u}.state, 'labels', ${u}.labels, 'version', ${u}.version, 'createTime', ${u}.create_time,
      'updateTime', ${u}.update_time, 'deleteTime', ${u}.delete_time, 'tokensValidAfter', ${u}.tokens_valid_after)`;
/** The service's read of user `index` (no lock); stores old_<column> and old_previous (its snapshot). */
const readUser = (index: string) => `SELECT ${USER_COLUMNS},
  ${snapshotOf("u")} AS previous
  FROM users u WHERE u.id = ${benchId(index)} \\gset old_`;
/** A column that may be NULL, as \gset stored it ("" for NULL). */
const orNull = (column: string, type: string) => `NULLIF(:old_${column}, '')::${type}`;
/** Where the write takes the user as read: pgbench variables (after `readUser`), or a CTE of the statement. */
type Source = "variables" | "cte";
const fromVariables: Record<string, string> = {
  id: ":old_id::uuid",
  email: ":old_email",
  display_name: ":old_display_name",
  role: ":old_role",
  state: ":old_state",
  labels: ":old_labels::jsonb",
  version: ":old_version::int",
  delete_time: orNull("delete_time", "timestamptz"),
  tokens_valid_after: orNull("tokens_valid_after", "timestamptz"),
  previous: ":old_previous::jsonb",
};
const old = (source: Source, column: string) => (source === "variables" ? fromVariables[column] : `old.${column}`);
/**
 * The service's write of the user read: one statement. It sets every column, as the service does: those in
 * `set` to their new values, the others to the values read. With `source` "cte" the statement reads the user
 * itself (an `old` CTE), which is what the service's one statement amounts to when it writes from the copy in
 * its cache (src/users/user-cache.ts): one round trip, and the row found by its primary key.
 */
const writeUser = (type: string, set: Record<string, string>, revoke: boolean, source: Source, index = "") => {
  const columns: Record<string, string> = {
    email: old(source, "email"),
    display_name: old(source, "display_name"),
    role: old(source, "role"),
    state: old(source, "state"),
    labels: old(source, "labels"),
    version: `${old(source, "version")} + 1`,
    update_time: "now()",
    delete_time: old(source, "delete_time"),
    tokens_valid_after: old(source, "tokens_valid_after"),
    ...set,
  };
  const assignments = Object.entries(columns).map(([c, v]) => `${c} = ${v}`);
  const cte = source === "cte";
  const ctes = [
    ...(cte
      ? [`old AS (SELECT ${USER_COLUMNS}, ${snapshotOf("u")} AS previous FROM users u WHERE u.id = ${benchId(index)})`]
      : []),
    `upd AS (UPDATE users SET ${assignments.join(", ")}${cte ? " FROM old" : ""}
    WHERE users.id = ${old(source, "id")} AND users.version = ${old(source, "version")} RETURNING users.*)`,
    `chg AS (INSERT INTO user_changes (user_id, type, snapshot, previous, revoke_before)
    SELECT upd.id, '${type}', ${snapshotOf("upd")},
           ${old(source, "previous")}, ${revoke ? "upd.tokens_valid_after" : "NULL"} FROM upd${cte ? ", old" : ""})`,
  ];
  if (revoke) {
    ctes.push(`rev AS (UPDATE sessions SET revoke_time = upd.update_time FROM upd
    WHERE sessions.user_id = upd.id AND sessions.revoke_time IS NULL)`);
  }
  return `WITH ${ctes.join(",\n  ")}\nSELECT count(*) AS changed FROM upd \\gset w_`;
};

/** The change log's sequencer (docs/adr/0016), run beside both sides, told apart in the report. */
export const TRIGGER_STATEMENTS = [/user_changes_sequence/i];

/** A pgbench script per call: the service's statements (`transaction`), and the bare statement alone. */
export const PGBENCH_SCRIPTS: Record<WriteOp, { transaction: string; bare: string }> = {
  // UpdateUser of display_name (update_mask ["display_name"], empty etag).
  update: {
    // A write that lost a race with another client's for the same row (its version moved on) reads the user
    // again and writes once more, as the service does.
    transaction: `\\set i random(0, :users - 1)
\\set n random(1, 999999999)
${writeUser("updated", { display_name: "'Bench Writer ' || :n" }, false, "cte", ":i")}
\\if :w_changed = 0
${readUser(":i")}
${writeUser("updated", { display_name: "'Bench Writer ' || :n" }, false, "variables")}
\\endif
`,
    bare: `\\set i random(0, :users - 1)
\\set n random(1, 999999999)
UPDATE users SET display_name = 'Bench Writer ' || :n, version = version + 1, update_time = now()
  WHERE id = ${benchId(":i")};
`,
  },
  // CreateUser without a password and without a request id (no idempotency key): one statement.
  create: {
    transaction: `\\set j :j + 1
WITH ins AS (INSERT INTO users (id, email, display_name, role, state, labels, password_hash, version, create_time,
                   update_time, delete_time, tokens_valid_after)
  VALUES (gen_random_uuid(), 'pgbench-' || :tag || '-' || :client_id || '-' || :j || '@bench.example',
          'Pgbench User ' || :j, 'user', 'active', '{}', NULL, 1, now(), now(), NULL, NULL)
  RETURNING *),
  chg AS (INSERT INTO user_changes (user_id, type, snapshot, previous, revoke_before)
    SELECT ins.id, 'created', ${snapshotOf("ins")}, NULL, NULL FROM ins)
SELECT 1 AS created FROM ins;
`,
    bare: `\\set j :j + 1
INSERT INTO users (id, email, display_name, role, state, labels, password_hash, version, create_time, update_time,
                   delete_time, tokens_valid_after)
  VALUES (gen_random_uuid(), 'pgbench-' || :tag || '-' || :client_id || '-' || :j || '@bench.example',
          'Pgbench User ' || :j, 'user', 'active', '{}', NULL, 1, now(), now(), NULL, NULL);
`,
  },
  // DeleteUser (soft delete) of distinct users: the user's sessions end in the same statement.
  delete: {
    transaction: `\\set j :j + 1
\\set i :first + permute(:client_id + :clients * :j, :count, :seed)
${writeUser("deleted", { state: "'deleted'", delete_time: "now()", tokens_valid_after: "now()" }, true, "cte", ":i")}
`,
    bare: `\\set j :j + 1
\\set i :first + permute(:client_id + :clients * :j, :count, :seed)
UPDATE users SET state = 'deleted', version = version + 1, update_time = now(), delete_time = now(),
                 tokens_valid_after = now()
  WHERE id = ${benchId(":i")};
`,
  },
};

// =========================================================================================================

export function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: "${raw}" is not a positive number`);
  return n;
}

export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";

const log = (line: string) => process.stderr.write(`bench:writes: ${line}\n`);

const OPS: WriteOp[] = ["update", "create", "delete"];
const opNames: Record<WriteOp, string> = { update: "UpdateUser", create: "CreateUser", delete: "DeleteUser" };
const changeType: Record<WriteOp, string> = { update: "updated", create: "created", delete: "deleted" };

function selectedOps(): WriteOp[] {
  const wanted = process.env.BENCH_WRITES_OPS?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (!wanted?.length) return OPS;
  const unknown = wanted.filter((w) => !(OPS as string[]).includes(w));
  if (unknown.length) throw new Error(`BENCH_WRITES_OPS: unknown ${unknown.join(", ")}; known: ${OPS.join(", ")}`);
  return OPS.filter((o) => wanted.includes(o));
}

const running = new Set<ServerProcess>();
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
/**
 * Load generators and servers first (a service whose database is gone shuts down slowly), then the rest in
 * reverse order. A second caller meanwhile (SIGINT arrives, the run fails because of it and cleans up too)
 * waits for the same cleanup instead of racing it.
 */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    stopLoads();
    await Promise.all([...running].map((s) => s.stop().catch((err: unknown) => log(`cleanup: ${String(err)}`))));
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  })().finally(() => {
    cleaning = undefined;
  });
  return cleaning;
}

/** One measured load of any kind, as the report shows it. */
interface Measured {
  op: WriteOp;
  kind: "service" | "transaction" | "bare";
  name: string;
  /** Calls (or clients) in flight. */
  concurrency: number;
  /** Calls or transactions in the measured period. */
  count: number;
  rate: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuPercent: number;
  serverCpuUsPerCall: number;
  /** The kernel's part of it (system time: socket writes and reads, mostly). */
  serverSystemUsPerCall: number;
  postgresCpuUsPerCall: number;
  clientCpuPercent: number;
  statements?: StatementStat[];
  note?: string;
}

/** `writes`: returns the markdown report. */
export async function writes(): Promise<string> {
  try {
    return await measureWrites();
  } finally {
    await cleanUp();
  }
}

async function measureWrites(): Promise<string> {
  const loadAverage = loadavg()[0];
  const durationSeconds = positive("BENCH_DURATION", 10);
  const warmupSeconds = positive("BENCH_WARMUP", 3);
  const users = positive("BENCH_USERS", 100_000);
  const inFlight = positive("BENCH_WRITES_IN_FLIGHT", 100);
  const connections = positive("BENCH_WRITES_CONNECTIONS", 4);
  const pgClients = positive("BENCH_PGBENCH_CLIENTS", 10);
  const ops = selectedOps();
  const profileDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
  const pgbench = await ensurePgbench(log);

  const work = mkdtempSync(join(tmpdir(), "user-service-bench-writes-"));
  cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
  let databaseUrl = process.env.BENCH_DATABASE_URL;
  let postgresPid: number | undefined;
  if (!databaseUrl) {
    // Started twice: the second time with pg_stat_statements preloaded (ALTER SYSTEM needs a running server).
    const first = await startEmbeddedPostgres(work, log);
    const admin = new pg.Client({ connectionString: first.url });
    await admin.connect();
    await admin.query("alter system set shared_preload_libraries = 'pg_stat_statements'");
    await admin.query("alter system set pg_stat_statements.track = 'all'");
    await admin.end();
    await first.stop();
    const embedded = await startEmbeddedPostgres(work, log);
    cleanups.push(() => embedded.stop());
    databaseUrl = embedded.url;
    postgresPid = postmasterPid(join(work, "postgres"));
  }
  const seeding = performance.now();
  await seed(databaseUrl, users);
  log(`seeded ${users} users in ${Math.round(performance.now() - seeding)} ms`);

  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  cleanups.push(() => db.end());
  // A database used before (BENCH_DATABASE_URL) may hold bench users an earlier run deleted: restore them
  // (directly, without the change log) so that every load finds the users it expects live.
  const restored = await db.query(
    `update users set state = 'active', delete_time = null, tokens_valid_after = null, version = version + 1,
       update_time = now()
     where id between $1 and $2 and state = 'deleted'`,
    [benchUserId(0), benchUserId(users - 1)],
  );
  if (restored.rowCount) log(`restored ${restored.rowCount} bench users deleted by an earlier run`);
  await db.query("vacuum analyze users");
  const statementsOn = await enableStatements(db);
  if (!statementsOn) log("pg_stat_statements is not loaded by this server: no statement counts in the report");
  const postgresVersion = (await db.query<{ v: string }>("select current_setting('server_version') as v")).rows[0].v;
  const changes = async (type: string) =>
    Number((await db.query<{ n: string }>("select count(*) as n from user_changes where type = $1", [type])).rows[0].n);
  const beforeLoad = async () => {
    await db.query("checkpoint");
    if (statementsOn) await resetStatements(db);
  };

  const env: ServerEnv = {
    DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(48).toString("base64url"),
    JWT_ISSUER: process.env.JWT_ISSUER || "user-service",
    JWT_AUDIENCE: process.env.JWT_AUDIENCE || "user-service",
    DB_POOL_MAX: "10",
  };
  const token = benchAdminToken(env, 12 * 3600);
  const tag = randomBytes(4).toString("hex");

  // DeleteUser takes distinct users: the service a quarter of them, pgbench's transaction 10 % for its warm-up
  // and 25 % measured, the bare statement 10 % and 30 % (when a pgbench load outruns its share, it deletes
  // some users twice, and the report says so).
  const slice = (from: number, to: number) => ({
    first: Math.floor(users * from),
    count: Math.floor(users * to) - Math.floor(users * from),
  });
  const deleteSlices = {
    service: slice(0, 0.25),
    transaction: { warmup: slice(0.25, 0.35), measured: slice(0.35, 0.6) },
    bare: { warmup: slice(0.6, 0.7), measured: slice(0.7, 1) },
  };

  const measured: Measured[] = [];

  async function serviceLoad(op: WriteOp): Promise<Measured> {
    const nodeArgs = profileDir
      ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=writes-${op}.cpuprofile`]
      : [];
    const server = await startServer("service", env, nodeArgs);
    running.add(server);
    try {
      const before = await changes(changeType[op]);
      await beforeLoad();
      const r: LoadResult = await runServiceLoad({
        op,
        origin: server.origin,
        token,
        inFlight,
        connections,
        warmupSeconds,
        durationSeconds,
        users,
        deleteRange: deleteSlices.service,
        tag,
        serverPid: server.pid,
        postgresPid,
      });
      const statements = statementsOn ? await readStatements(db, r.okCalls, TRIGGER_STATEMENTS) : undefined;
      if (r.failures > 0) {
        const output = server.output().trim();
        throw new Error(
          `${opNames[op]} through the service: ${r.failures} failed calls (${r.okCalls} succeeded):\n` +
            `${r.firstFailures.join("\n")}${output ? `\nserver output (tail):\n${output}` : ""}`,
        );
      }
      // Give the last commits' change-log rows a moment (they are committed before the answer, so none is missing).
      const added = (await changes(changeType[op])) - before;
      if (added !== r.okCalls)
        throw new Error(
          `${opNames[op]}: ${r.okCalls} successful calls but ${added} '${changeType[op]}' change-log rows`,
        );
      return {
        op,
        kind: "service",
        name: `service gRPC, ${inFlight} in flight`,
        concurrency: inFlight,
        count: r.measured,
        rate: r.rps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        serverCpuPercent: (r.serverCpuSeconds / durationSeconds) * 100,
        serverCpuUsPerCall: (r.serverCpuSeconds / r.measured) * 1e6,
        serverSystemUsPerCall: (r.serverSystemSeconds / r.measured) * 1e6,
        postgresCpuUsPerCall: (r.postgresCpuSeconds / r.measured) * 1e6,
        clientCpuPercent: (r.clientCpuSeconds / durationSeconds) * 100,
        statements,
      };
    } finally {
      await server.stop();
      running.delete(server);
    }
  }

  async function pgbenchLoad(op: WriteOp, kind: "transaction" | "bare"): Promise<Measured> {
    const vars = (phase: "warmup" | "measured"): Record<string, string | number> => {
      if (op === "update") return { users };
      if (op === "create") return { tag: `${tag}${kind[0]}${phase[0]}`, j: -1 };
      const s = deleteSlices[kind][phase];
      return { first: s.first, count: s.count, clients: pgClients, seed: 1 + Math.floor(Math.random() * 1e9), j: -1 };
    };
    const before = await changes(changeType[op]);
    await beforeLoad();
    // The service's writes make its change feed number them (docs/adr/0016): the reference does that work too.
    const stopSequencer = kind === "transaction" ? await startSequencerLoop(databaseUrl as string) : undefined;
    const r: PgbenchResult = await runPgbench({
      pgbench: pgbench.path,
      label: `${op}-${kind}`,
      script: PGBENCH_SCRIPTS[op][kind],
      url: databaseUrl as string,
      clients: pgClients,
      warmupSeconds,
      durationSeconds,
      vars: vars("measured"),
      warmupVars: vars("warmup"),
      workDir: work,
      postgresPid,
    }).finally(() => stopSequencer?.());
    const total = r.transactions + r.warmupTransactions;
    const statements = statementsOn ? await readStatements(db, total, TRIGGER_STATEMENTS) : undefined;
    const added = (await changes(changeType[op])) - before;
    const expected = kind === "transaction" ? total : 0;
    if (added !== expected)
      throw new Error(
        `pgbench ${op} ${kind}: ${total} transactions but ${added} '${changeType[op]}' change-log rows (expected ${expected})`,
      );
    const wrapped =
      op === "delete" && r.transactions > deleteSlices[kind].measured.count
        ? `more transactions than the ${deleteSlices[kind].measured.count} users set aside: some users were deleted twice`
        : undefined;
    return {
      op,
      kind,
      name: `pgbench ${kind === "transaction" ? "the service's statements" : "the bare statement"}, ${pgClients} clients`,
      concurrency: pgClients,
      count: r.transactions,
      rate: r.tps,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      serverCpuPercent: Number.NaN,
      serverCpuUsPerCall: Number.NaN,
      serverSystemUsPerCall: Number.NaN,
      postgresCpuUsPerCall: (r.postgresCpuSeconds / r.transactions) * 1e6,
      clientCpuPercent: Number.NaN,
      statements,
      note: wrapped,
    };
  }

  for (const op of ops) {
    for (const step of ["service", "transaction", "bare"] as const) {
      const m = step === "service" ? await serviceLoad(op) : await pgbenchLoad(op, step);
      measured.push(m);
      log(
        `${opNames[op]} ${m.name}: ${fmt(m.rate)}/s, p50 ${fmt(m.p50Ms, 1)} ms, p99 ${fmt(m.p99Ms, 1)} ms` +
          (step === "service"
            ? `, server CPU ${fmt(m.serverCpuPercent)} % (${fmt(m.serverCpuUsPerCall)} µs/call, ${fmt(m.serverSystemUsPerCall)} of it system), load generator ${fmt(m.clientCpuPercent)} %`
            : "") +
          `, PostgreSQL ${fmt(m.postgresCpuUsPerCall)} µs/call` +
          (m.statements ? `, ${fmt(statementsPerCall(m.statements), 1)} statements/call` : ""),
      );
    }
  }

  return render(
    {
      date: new Date().toISOString().slice(0, 16).replace("T", " "),
      commit: gitCommit(),
      node: process.version,
      cpus: availableParallelism(),
      loadAverage,
      postgres: `${postgresVersion} (${process.env.BENCH_DATABASE_URL ? "BENCH_DATABASE_URL" : "embedded, default settings: fsync and synchronous_commit on; pg_stat_statements preloaded"})`,
      pgbench: pgbench.version,
      users,
      durationSeconds,
      warmupSeconds,
      inFlight,
      connections,
      pgClients,
      statementsOn,
    },
    ops,
    measured,
  );
}

interface Info {
  date: string;
  commit: string;
  node: string;
  cpus: number;
  loadAverage: number;
  postgres: string;
  pgbench: string;
  users: number;
  durationSeconds: number;
  warmupSeconds: number;
  inFlight: number;
  connections: number;
  pgClients: number;
  statementsOn: boolean;
}

const GOAL_RATIO = 0.5;
const FLOOR_RATIO = 0.25;
const GOAL_CPU_US = 500;

function render(info: Info, ops: WriteOp[], all: Measured[]): string {
  const find = (op: WriteOp, kind: Measured["kind"]) => all.find((m) => m.op === op && m.kind === kind) as Measured;
  const out: string[] = [
    "# Writes: the service against pgbench on the same transaction",
    "",
    `${info.date}, commit ${info.commit}, Node ${info.node}, ${info.cpus} CPUs (load average ${fmt(info.loadAverage, 2)} before the run).`,
    `PostgreSQL ${info.postgres}; ${info.pgbench}. ${fmt(info.users)} users seeded.`,
    `Each load: ${info.warmupSeconds} s warm-up, then ${info.durationSeconds} s measured. The service (the server bundle, as deployed,`,
    `LOG_LEVEL=warn, DB_POOL_MAX=10) gets ${info.inFlight} calls in flight over ${info.connections} HTTP/2 connections (gRPC) from a`,
    `load-generating child process; pgbench runs ${info.pgClients} clients with \`-M prepared\`, the service stopped. A CHECKPOINT`,
    "precedes every load. The machine is shared: rates and latencies move between runs, CPU per call much less.",
    "",
    `| operation | service req/s | pgbench tps, the service's statements | service / pgbench (goal ≥ ${GOAL_RATIO}x, floor ${FLOOR_RATIO}x) | service CPU µs/call (goal ≤ ${GOAL_CPU_US}) | service p50 / p99 ms | pgbench p50 / p99 ms | pgbench tps, bare statement |`,
    "|---|--:|--:|--:|--:|--:|--:|--:|",
  ];
  const verdicts: string[] = [];
  for (const op of ops) {
    const s = find(op, "service");
    const t = find(op, "transaction");
    const b = find(op, "bare");
    const ratio = s.rate / t.rate;
    out.push(
      `| ${opNames[op]} | ${fmt(s.rate)} | ${fmt(t.rate)} | ${fmt(ratio, 2)}x | ${fmt(s.serverCpuUsPerCall)} | ${fmt(s.p50Ms, 1)} / ${fmt(s.p99Ms, 1)} | ${fmt(t.p50Ms, 1)} / ${fmt(t.p99Ms, 1)} | ${fmt(b.rate)} |`,
    );
    const ratioVerdict =
      ratio >= GOAL_RATIO ? "met" : ratio >= FLOOR_RATIO ? "**not met** (above the floor)" : "**below the floor**";
    const cpuVerdict = s.serverCpuUsPerCall <= GOAL_CPU_US ? "met" : "**not met**";
    verdicts.push(
      `- ${opNames[op]}: ${fmt(ratio, 2)}x pgbench (goal ≥ ${GOAL_RATIO}x: ${ratioVerdict}); ${fmt(s.serverCpuUsPerCall)} µs CPU per call (goal ≤ ${GOAL_CPU_US}: ${cpuVerdict}).`,
    );
  }
  out.push("", "Goals of issue 14 (reported, not asserted):", "", ...verdicts, "");

  out.push(
    "## Every load",
    "",
    "Server CPU is the service process's (user + system, /proc; system time in brackets) over the measured period; PostgreSQL CPU is the postmaster's",
    "and every backend's, per call or transaction (local databases only); statements per call come from pg_stat_statements",
    "(warm-up included, whichever connection sent them), without BEGIN/COMMIT and the commit trigger's statements.",
    "",
    "| operation | load | calls or transactions | per second | p50 ms | p99 ms | server CPU % | server CPU µs/call (system) | PostgreSQL CPU µs/call | statements/call | load generator CPU % |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  );
  for (const m of all) {
    out.push(
      `| ${opNames[m.op]} | ${m.name} | ${fmt(m.count)} | ${fmt(m.rate)} | ${fmt(m.p50Ms, 1)} | ${fmt(m.p99Ms, 1)} | ${m.kind === "service" ? fmt(m.serverCpuPercent) : ""} | ${m.kind === "service" ? `${fmt(m.serverCpuUsPerCall)} (${fmt(m.serverSystemUsPerCall)})` : ""} | ${fmt(m.postgresCpuUsPerCall)} | ${m.statements ? fmt(statementsPerCall(m.statements), 2) : "n/a"} | ${m.kind === "service" ? fmt(m.clientCpuPercent) : ""} |`,
    );
  }
  const notes = all.filter((m) => m.note);
  if (notes.length) out.push("", ...notes.map((m) => `- ${opNames[m.op]}, ${m.name}: ${m.note}.`));
  out.push("");

  if (info.statementsOn) {
    out.push(
      "## What PostgreSQL ran per call",
      "",
      "pg_stat_statements (`track = all`, so the commit trigger's statements are counted too), from the start of each load's",
      "warm-up, per successful call (service) or transaction (pgbench); statements below 0.02 per call left out. pgbench's",
      "BEGIN/END go through the prepared protocol, which pg_stat_statements does not count; the service's are simple queries.",
      "The service's include what its other connections ran meanwhile (the change feed reading the log after each NOTIFY,",
      "revoked-session polling).",
      "",
    );
    for (const m of all) {
      if (!m.statements) continue;
      out.push(
        `<details><summary>${opNames[m.op]}, ${m.name}: ${fmt(statementsPerCall(m.statements), 2)} statements per call besides BEGIN/COMMIT and the trigger's</summary>`,
        "",
        ...statementsTable(m.statements),
        "",
        "</details>",
        "",
      );
    }
  }

  out.push(
    "## The pgbench scripts",
    "",
    "From bench/scenarios/writes.ts (PGBENCH_SCRIPTS), which must follow the service's write path when it changes.",
    "",
  );
  for (const op of ops) {
    for (const kind of ["transaction", "bare"] as const) {
      out.push(
        `<details><summary>${opNames[op]}: ${kind === "transaction" ? "the service's statements" : "the bare statement"}</summary>`,
        "",
        "```sql",
        PGBENCH_SCRIPTS[op][kind].trimEnd(),
        "```",
        "",
        "</details>",
        "",
      );
    }
  }
  return out.join("\n");
}

/** Stops the servers, load generators and database of a run still going (on SIGINT). */
export { cleanUp };
