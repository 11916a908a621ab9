/**
 * Outbound delivery (docs/adr/0024-event-delivery.md): how many events a second the service delivers to a
 * webhook and publishes to JetStream, against a minimal hand-written outbox deliverer (bench/outbound-
 * reference.ts) over the same backlog, the same database and the same receivers, in the same run.
 *
 * A backlog of BENCH_EVENTS user creations is imported through the API once. Then, for each target, the
 * target's cursor is set just before the backlog and the delivery runs until every event has arrived:
 * - service webhook: the server bundle with one webhook (every type) to a receiver process of its own
 *   (bench/webhook-receiver.ts, which verifies every signature with `standardwebhooks`);
 * - reference webhook: the reference POSTs the same events, signed, to the same receiver;
 * - service NATS: the server bundle with NATS_URL, publishing to USER_EVENTS on a real `nats-server -js`;
 * - reference NATS: the reference publishing the same events to a stream of its own on the same server.
 * The rate is (events - 1) / (last arrival - first arrival): start-up is not counted. Webhook arrivals are
 * timed by the receiver; JetStream ones by the stream's own message timestamps.
 *
 * Environment (all optional): BENCH_DATABASE_URL, BENCH_EVENTS (5000), BENCH_ROUNDS (3).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { availableParallelism, cpus, loadavg } from "node:os";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { hash } from "@node-rs/bcrypt";
import pg from "pg";
import { WebhookService } from "../../gen/events/v1/webhook_service_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { startNats } from "../../test/helpers/nats-server.ts";
import { benchDatabase } from "../database.ts";
import { benchAdminToken, seed } from "../seed.ts";
import { gitCommit, repoRoot, type ServerEnv, type ServerProcess, startServer } from "../servers.ts";

const num = (name: string, fallback: number) => Number(process.env[name] || fallback);
const log = (line: string) => process.stderr.write(`bench:outbound: ${line}\n`);

const cleanups: (() => Promise<void>)[] = [];
export async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => log(`cleanup: ${String(err)}`));
}

/** Spawns a bench helper script; resolves with the child once it printed `ready` (a line matching it). */
function spawnScript(
  script: string,
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [script], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  return new Promise((done, fail) => {
    const onData = (c: Buffer) => {
      out += c;
      const m = ready.exec(out);
      if (m) done({ child, line: m[0] });
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (c: Buffer) => {
      out += c;
    });
    child.once("exit", (code) => fail(new Error(`${script} exited (${code}): ${out.slice(-1000)}`)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Arrival {
  received: number;
  bad: number;
  duplicates: number;
  firstMs: number;
  lastMs: number;
}

/** Events per second between the first and the last arrival. */
const rate = (n: number, firstMs: number, lastMs: number) => ((n - 1) / (lastMs - firstMs)) * 1000;

/** The scenario: returns its markdown report. */
export async function outbound(): Promise<string> {
  const events = num("BENCH_EVENTS", 5000);
  const rounds = num("BENCH_ROUNDS", 3);
  const load = loadavg()[0];
  try {
    const databaseUrl = await benchDatabase("outbound", cleanups, log);
    await seed(databaseUrl, 1000);
    const nats = await startNats();
    cleanups.push(() => nats.dispose());
    const receiver = await spawnScript("bench/webhook-receiver.ts", {}, /listening (\d+)/);
    cleanups.push(async () => void receiver.child.kill());
    const receiverOrigin = `http://127.0.0.1:${/\d+/.exec(receiver.line)?.[0]}`;
    const env: ServerEnv & Record<string, string> = {
      DATABASE_URL: databaseUrl,
      JWT_SECRET: randomBytes(48).toString("base64url"),
      JWT_ISSUER: "user-service",
      JWT_AUDIENCE: "user-service",
      DB_POOL_MAX: "10",
      RATE_LIMIT_PER_SECOND: "1000000",
      RATE_LIMIT_BURST: "1000000",
      WEBHOOK_ALLOW_PRIVATE: "true",
    };
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    cleanups.push(() => db.end());
    const running = new Set<ServerProcess>();
    cleanups.push(() => Promise.all([...running].map((s) => s.stop())).then(() => {}));
    const start = async (extra: Record<string, string>) => {
      const s = await startServer("service", { ...env, ...extra } as ServerEnv);
      running.add(s);
      return s;
    };
    const stop = async (s: ServerProcess) => {
      await s.stop();
      running.delete(s);
    };
    const asAdmin = { headers: { authorization: `Bearer ${benchAdminToken(env, 3600)}` } };

    // The backlog: `events` user creations, imported through the API, numbered by the sequencer.
    const setup = await start({});
    const transport = createGrpcTransport({ baseUrl: setup.origin });
    const webhookPath = "/service";
    const created = await createClient(WebhookService, transport).createWebhook(
      { url: `${receiverOrigin}${webhookPath}`, description: "bench" },
      asAdmin,
    );
    const webhookId = created.webhook?.id ?? "";
    const tag = randomBytes(3).toString("hex");
    const users = createClient(UserService, transport);
    const before = Number((await db.query("select coalesce(max(seq), 0) as s from user_changes")).rows[0].s);
    log(`importing ${events} users`);
    // A bcrypt hash stored as given: no hashing on the server, so the import is quick.
    const passwordHash = await hash("outbound bench password", { cost: 4 });
    const imported = await users.importUsers(
      (async function* () {
        for (let i = 0; i < events; i++) {
          yield {
            user: { email: `out-${tag}-${i}@bench.example`, displayName: `Outbound ${i}` },
            credential: { case: "passwordHash" as const, value: passwordHash },
          };
        }
      })(),
      asAdmin,
    );
    if (imported.createdCount !== events) {
      throw new Error(`imported ${imported.createdCount} of ${events}: ${imported.failures[0]?.reason ?? "skipped"}`);
    }
    await stop(setup);
    // Every event of the backlog numbered, and the last one's seq.
    for (;;) {
      await db.query("select user_changes_sequence(true, 100000)");
      const { rows } = await db.query<{ n: string; last: string }>(
        "select count(*) as n, max(seq) as last from user_changes where seq > $1",
        [before],
      );
      if (Number(rows[0].n) >= events) break;
      await sleep(50);
    }
    const secret = created.secret;
    await fetch(`${receiverOrigin}/secret${webhookPath}`, { method: "PUT", body: secret });
    await fetch(`${receiverOrigin}/secret/reference`, { method: "PUT", body: secret });
    const counts = async (path: string): Promise<Arrival> =>
      (await fetch(`${receiverOrigin}/count${path}`)).json() as Promise<Arrival>;
    const reset = async (path: string) => void (await fetch(`${receiverOrigin}/count${path}`, { method: "DELETE" }));

    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    /** Rate over the messages of `stream` from its seq `from` on: the stream's own timestamps. */
    const streamRate = async (stream: string, from: number) => {
      const first = await jsm.streams.getMessage(stream, { seq: from });
      const last = await jsm.streams.getMessage(stream, { seq: from + events - 1 });
      if (!first || !last) throw new Error(`${stream} lacks messages ${from}..${from + events - 1}`);
      const info = await jsm.streams.info(stream);
      return { perSecond: rate(events, first.time.getTime(), last.time.getTime()), messages: info.state.messages };
    };
    const waitFor = async (done: () => Promise<boolean>, what: string) => {
      const deadline = Date.now() + 600_000;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`${what}: not done within 10 minutes`);
        await sleep(100);
      }
    };

    const results: { serviceWebhook: number; referenceWebhook: number; serviceNats: number; referenceNats: number }[] =
      [];
    for (let r = 0; r < rounds; r++) {
      log(`round ${r + 1}/${rounds}`);
      // Service webhook: the endpoint's cursor just before the backlog, then a server delivers it.
      await reset(webhookPath);
      await db.query(
        "update webhooks set cursor_seq = $2, attempt = 0, next_attempt_time = now(), failing_since = null, lease_owner = null, lease_until = null where id = $1",
        [webhookId, before],
      );
      const hooked = await start({});
      await waitFor(async () => (await counts(webhookPath)).received >= events, "service webhook");
      await stop(hooked);
      const svc = await counts(webhookPath);

      await reset("/reference");
      const refRun = await spawnScript(
        "bench/outbound-reference.ts",
        {
          DATABASE_URL: databaseUrl,
          MODE: "webhook",
          AFTER: String(before),
          COUNT: String(events),
          WEBHOOK_URL: `${receiverOrigin}/reference`,
          WEBHOOK_SECRET: secret,
        },
        /done \d+/,
      );
      refRun.child.kill();
      const ref = await counts("/reference");
      for (const [who, c] of [
        ["service", svc],
        ["reference", ref],
      ] as const) {
        if (c.received !== events || c.duplicates > 0 || c.bad > 0)
          throw new Error(`${who} webhook: ${c.received} received of ${events}, ${c.duplicates} twice, ${c.bad} bad`);
      }

      // NATS: the publisher's cursor just before the backlog, on a fresh stream each round.
      await jsm.streams.delete("USER_EVENTS").catch(() => false);
      await db.query(
        "update event_publishers set cursor_seq = $1, lease_owner = null, lease_until = null where name = 'nats'",
        [before],
      );
      const publishing = await start({ NATS_URL: nats.url });
      await waitFor(async () => {
        const info = await jsm.streams.info("USER_EVENTS").catch(() => undefined);
        return (info?.state.messages ?? 0) >= events;
      }, "service NATS");
      await stop(publishing);
      const svcNats = await streamRate("USER_EVENTS", 1);
      await jsm.streams.delete("BENCH_REFERENCE").catch(() => false);
      const refNats = await spawnScript(
        "bench/outbound-reference.ts",
        {
          DATABASE_URL: databaseUrl,
          MODE: "nats",
          AFTER: String(before),
          COUNT: String(events),
          NATS_URL: nats.url,
          NATS_STREAM: "BENCH_REFERENCE",
          NATS_SUBJECT_PREFIX: "reference",
        },
        /done \d+/,
      );
      refNats.child.kill();
      const refNatsRate = await streamRate("BENCH_REFERENCE", 1);
      if (svcNats.messages !== events) throw new Error(`USER_EVENTS holds ${svcNats.messages} messages, not ${events}`);
      results.push({
        serviceWebhook: rate(events, svc.firstMs, svc.lastMs),
        referenceWebhook: rate(events, ref.firstMs, ref.lastMs),
        serviceNats: svcNats.perSecond,
        referenceNats: refNatsRate.perSecond,
      });
    }

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "-");
    const m = (k: keyof (typeof results)[number]) => median(results.map((x) => x[k]));
    return [
      "## Outbound delivery: webhook and JetStream events/s",
      "",
      `Commit ${gitCommit()}, ${cpus()[0]?.model ?? "cpu"} x${availableParallelism()}, load average ${f(load, 2)} before the run; ` +
        `a backlog of ${events} user creations delivered from its start, median of ${rounds} rounds; ` +
        "rate from the first to the last arrival (start-up not counted).",
      "",
      "| target | service events/s | reference events/s | ratio |",
      "| --- | ---: | ---: | ---: |",
      `| webhook (one endpoint, every signature verified by the receiver) | ${f(m("serviceWebhook"))} | ${f(m("referenceWebhook"))} | ${f(m("serviceWebhook") / m("referenceWebhook"), 2)}x |`,
      `| NATS JetStream (USER_EVENTS, Nats-Msg-Id per event) | ${f(m("serviceNats"))} | ${f(m("referenceNats"))} | ${f(m("serviceNats") / m("referenceNats"), 2)}x |`,
      "",
      "Per round (service / reference events/s):",
      "",
      "| round | webhook | NATS |",
      "| ---: | ---: | ---: |",
      ...results.map(
        (x, i) =>
          `| ${i + 1} | ${f(x.serviceWebhook)} / ${f(x.referenceWebhook)} | ${f(x.serviceNats)} / ${f(x.referenceNats)} |`,
      ),
      "",
      "Checked every round: each event arrived once at the receiver with a signature `standardwebhooks` verifies, and " +
        "USER_EVENTS held exactly one message per event.",
      "",
    ].join("\n");
  } finally {
    await cleanUp();
  }
}
