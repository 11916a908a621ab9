/**
 * Reading the stream USER_EVENTS as a consumer does, and comparing it with the events in the database, for the
 * NATS publisher's tests. The server itself is started by ./nats-server.ts.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, nanos } from "@nats-io/transport-node";
import { query } from "./database.ts";

export { type NatsServer, startNats } from "./nats-server.ts";

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
