/**
 * The reference of the outbound bench: a minimal hand-written outbox deliverer, the least an at-least-once,
 * in-order delivery must do, run as a process of its own against the same database and the same receivers as
 * the service. It reads the change log after a seq in batches of 100 (one prepared query, no ORM), and for
 * each event, one at a time, either POSTs it signed with `standardwebhooks` (webhook mode, keep-alive, one
 * request in flight) or publishes it to JetStream with its id as Nats-Msg-Id and waits for the ack (nats
 * mode), then saves its cursor (one UPDATE per event, as a delivery that must survive a crash does). No lease,
 * no retries, no SSRF check, no delivery log: it is what the service's delivery is measured against.
 *
 * Environment: DATABASE_URL, MODE (webhook | nats), AFTER (seq), COUNT (events to deliver), and WEBHOOK_URL
 * + WEBHOOK_SECRET, or NATS_URL + NATS_STREAM + NATS_SUBJECT_PREFIX. Prints `done <events>` and exits.
 */
import { Agent, request } from "node:http";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { Webhook } from "standardwebhooks";

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const mode = env("MODE");
const count = Number(env("COUNT"));
let cursor = Number(env("AFTER"));

const pool = new pg.Pool({ connectionString: env("DATABASE_URL"), max: 2 });
await pool.query("create table if not exists bench_reference_cursor (name text primary key, seq bigint not null)");
await pool.query(
  "insert into bench_reference_cursor values ($1, $2) on conflict (name) do update set seq = excluded.seq",
  [mode, cursor],
);

interface Row {
  id: string;
  seq: string;
  type: string;
  change_time: Date;
  snapshot: unknown;
}
const body = (r: Row) =>
  JSON.stringify({ type: `user.${r.type}`, timestamp: r.change_time.toISOString(), data: r.snapshot });

let send: (r: Row) => Promise<void>;
let close = async () => {};
if (mode === "webhook") {
  const url = new URL(env("WEBHOOK_URL"));
  const signer = new Webhook(env("WEBHOOK_SECRET"));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  send = (r) =>
    new Promise((done, fail) => {
      const payload = body(r);
      const now = new Date();
      const req = request(
        url,
        {
          method: "POST",
          agent,
          headers: {
            "content-type": "application/json",
            "webhook-id": r.id,
            "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
            "webhook-signature": signer.sign(r.id, now, payload),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () =>
            res.statusCode && res.statusCode < 300 ? done() : fail(new Error(`status ${res.statusCode}`)),
          );
        },
      );
      req.on("error", fail);
      req.end(payload);
    });
  close = async () => agent.destroy();
} else {
  const nc = await connect({ servers: env("NATS_URL") });
  const stream = env("NATS_STREAM");
  const prefix = env("NATS_SUBJECT_PREFIX");
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] }).catch(() => {});
  const js = jetstream(nc);
  send = async (r) => {
    await js.publish(`${prefix}.user.${r.type}`, body(r), { msgID: r.id });
  };
  close = () => nc.drain();
}

let sent = 0;
while (sent < count) {
  const { rows } = await pool.query<Row>({
    name: "reference-read",
    text: "select id, seq, type, change_time, snapshot from user_changes where seq > $1 order by seq limit 100",
    values: [cursor],
  });
  if (rows.length === 0) {
    await new Promise((r) => setTimeout(r, 10));
    continue;
  }
  for (const r of rows) {
    if (sent >= count) break;
    await send(r);
    cursor = Number(r.seq);
    await pool.query({
      name: "reference-cursor",
      text: "update bench_reference_cursor set seq = $2 where name = $1",
      values: [mode, cursor],
    });
    sent++;
  }
}
await close();
await pool.end();
process.stdout.write(`done ${sent}\n`);
