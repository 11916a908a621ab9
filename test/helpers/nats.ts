/**
 * A real nats-server with JetStream (the Debian package; .ci/run installs it) on a free port, storing into a
 * directory of its own, for the NATS publisher's tests. It can be stopped and started again on the same port
 * and store, as a NATS outage looks to the service. A missing nats-server is a failure with the way to fix
 * it, never a skipped test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, nanos } from "@nats-io/transport-node";
import { query } from "./database.ts";

/** A nats-server, running or stopped; its port and store stay the same across restarts. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  /** Stops it (SIGTERM, then waits for the exit): JetStream state is on disk. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and deletes its store. */
  dispose(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

function spawnServer(port: number, storeDir: string): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  // Never outlive the test process, whatever happens to it.
  const orphanGuard = () => child.kill("SIGKILL");
  process.once("exit", orphanGuard);
  void exited.then(() => process.off("exit", orphanGuard));
  return new Promise((done, fail) => {
    let out = "";
    child.once("error", (err: NodeJS.ErrnoException) =>
      fail(
        err.code === "ENOENT"
          ? new Error("nats-server is not installed: apt-get install -y nats-server (Debian package; .ci/run does it)")
          : err,
      ),
    );
    const onData = (chunk: Buffer) => {
      out += chunk;
      if (out.includes("Server is ready")) done({ child, exited });
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) =>
      fail(new Error(`nats-server exited (${code}) before it was ready: ${out.slice(-500)}`)),
    );
  });
}

/** Starts nats-server -js on a free port with a fresh store directory. */
export async function startNats(): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "nats-js-"));
  let running: { child: ChildProcess; exited: Promise<void> } | undefined = await spawnServer(port, storeDir);
  const stop = async () => {
    const r = running;
    running = undefined;
    if (!r) return;
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGTERM");
    await r.exited;
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    async start() {
      if (!running) running = await spawnServer(port, storeDir);
    },
    async dispose() {
      await stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** A message of USER_EVENTS as a consumer sees it. */
export interface StreamedEvent {
  streamSeq: number;
  subject: string;
  /** The Nats-Msg-Id header: the event id. */
  msgId: string;
  /** The Users-Event-Seq header. */
  eventSeq: number;
  body: { type: string; timestamp: string; data: Record<string, unknown> };
}

/** Every message of the stream USER_EVENTS, in stream order (read with an ordered consumer). */
export async function streamEvents(natsUrl: string): Promise<StreamedEvent[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams
      .info("USER_EVENTS")
      .then((i) => i.state.last_seq)
      .catch(() => 0);
    const out: StreamedEvent[] = [];
    if (last === 0) return out;
    const consumer = await jetstream(nc).consumers.get("USER_EVENTS");
    while (out.length === 0 || out[out.length - 1].streamSeq < last) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
      for await (const m of batch) {
        out.push({
          streamSeq: m.seq,
          subject: m.subject,
          msgId: m.headers?.get("Nats-Msg-Id") ?? "",
          eventSeq: Number(m.headers?.get("Users-Event-Seq")),
          body: m.json(),
        });
        if (m.seq >= last) break;
      }
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Every numbered event in the database (user changes and auth events), in seq order, with its subject. */
export async function databaseEvents(databaseUrl: string): Promise<{ id: string; seq: number; subject: string }[]> {
  const rows = await query<{ id: string; seq: string; subject: string }>(
    databaseUrl,
    `select id::text, seq, 'users.user.' || type as subject from user_changes where seq is not null
     union all select id::text, seq, 'users.auth.' || lower(type) from auth_events where seq is not null
     order by seq`,
  );
  return rows.map((r) => ({ id: r.id, seq: Number(r.seq), subject: r.subject }));
}

/**
 * Waits until the stream holds exactly the database's events, each once and in seq order (by id, subject and
 * seq header); fails with the difference after `timeoutMs`.
 */
export async function expectStreamMatchesDatabase(
  natsUrl: string,
  databaseUrl: string,
  timeoutMs = 15_000,
): Promise<StreamedEvent[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [want, got] = await Promise.all([databaseEvents(databaseUrl), streamEvents(natsUrl)]);
    const seen = got.map((m) => ({ id: m.msgId, seq: m.eventSeq, subject: m.subject }));
    if (JSON.stringify(seen) === JSON.stringify(want)) return got;
    if (Date.now() > until) {
      const ids = seen.map((m) => m.id);
      const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
      throw new Error(
        `the stream does not hold every event once in order: ${want.length} events, ${got.length} messages, ` +
          `${duplicates.length} duplicated (${duplicates.slice(0, 3).join(", ")}); ` +
          `first difference at ${firstDifference(want, seen)}`,
      );
    }
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** How many messages USER_EVENTS holds (0 when it does not exist yet). */
export async function streamLength(natsUrl: string): Promise<number> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    return await jsm.streams
      .info("USER_EVENTS")
      .then((i) => i.state.messages)
      .catch(() => 0);
  } finally {
    await nc.close();
  }
}

/** Creates USER_EVENTS as an operator would, with a duplicate window of its own. */
export async function createUserEventsStream(natsUrl: string, duplicateWindowMs: number): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "USER_EVENTS", subjects: ["users.>"], duplicate_window: nanos(duplicateWindowMs) });
  } finally {
    await nc.close();
  }
}

/** The duplicate window of USER_EVENTS, in milliseconds. */
export async function duplicateWindowMs(natsUrl: string): Promise<number> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info("USER_EVENTS")).config.duplicate_window / 1e6;
  } finally {
    await nc.close();
  }
}

/** The first index where two lists differ (the shorter one's length when one is a prefix of the other). */
function firstDifference(a: unknown[], b: unknown[]): number {
  const i = a.findIndex((x, n) => JSON.stringify(x) !== JSON.stringify(b[n]));
  return i >= 0 ? i : Math.min(a.length, b.length);
}
