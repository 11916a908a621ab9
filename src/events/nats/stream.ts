/**
 * The JetStream side of publishing (docs/nats.md): the stream USER_EVENTS, an event as a message, and where
 * the stream stands (for the reconcile that makes publishing exactly once beyond the duplicate window).
 */
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { headers, type MsgHdrs, nanos } from "@nats-io/transport-node";
import type { OutboundEvent } from "../event-log.ts";

export const STREAM = "USER_EVENTS";
/** Every subject the service publishes on: `users.<wire type>` (`users.user.updated`, `users.auth.logout`). */
const SUBJECTS = "users.>";
/** The header carrying the event's seq in the one order of events: what the reconcile reads back. */
const SEQ_HEADER = "Users-Event-Seq";
/** How long JetStream remembers a Nats-Msg-Id: a retried publish within it is acknowledged as a duplicate. */
const DUPLICATE_WINDOW_MS = 120_000;

/** The subject of an event. */
const subjectOf = (e: OutboundEvent) => `users.${e.type}`;

/** An event as published: the payload (the webhook body's shape) and its headers. */
export function toMessage(e: OutboundEvent): { subject: string; payload: string; headers: MsgHdrs } {
  const h = headers();
  h.set(SEQ_HEADER, String(e.seq));
  return {
    subject: subjectOf(e),
    payload: JSON.stringify({ type: e.type, timestamp: e.time.toISOString(), data: e.data }),
    headers: h,
  };
}

/**
 * Creates the stream when missing (file storage, the duplicate window above, limits left to the server's
 * defaults). An existing stream is an operator's: its limits, retention and window are kept; only `users.>`
 * is added to its subjects if it lacks it, since nothing could be published otherwise.
 */
export async function ensureStream(jsm: JetStreamManager): Promise<"created" | "updated" | "found"> {
  let config: StreamConfig;
  try {
    config = (await jsm.streams.info(STREAM)).config;
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams.add({
      name: STREAM,
      subjects: [SUBJECTS],
      storage: StorageType.File,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    });
    return "created";
  }
  if (config.subjects?.includes(SUBJECTS)) return "found";
  await jsm.streams.update(STREAM, { subjects: [...(config.subjects ?? []), SUBJECTS] });
  return "updated";
}

/** Where the stream stands: the sequence of its last message, and the event seq of the last event in it. */
interface StreamPosition {
  /** The stream's last message sequence (0 when empty): the next publish expects it. */
  lastSequence: number;
  /** The seq header of the last message on `users.>` (0 when there is none, or it has no such header). */
  eventSeq: number;
  /** That message's Nats-Msg-Id: the event id, checked against the database's event at `eventSeq`. */
  eventId: string;
}

/**
 * Reads the stream's last sequence first, then the last event: a message a stale publisher adds between the
 * two makes the expectation stale, so the next publish is refused and the position read again; read the other
 * way round it could be missed, and its event published twice.
 */
export async function streamPosition(jsm: JetStreamManager): Promise<StreamPosition> {
  const lastSequence = (await jsm.streams.info(STREAM)).state.last_seq;
  const last = lastSequence === 0 ? null : await jsm.streams.getMessage(STREAM, { last_by_subj: SUBJECTS });
  const eventSeq = Number(last?.header.get(SEQ_HEADER) ?? 0);
  return {
    lastSequence,
    eventSeq: Number.isSafeInteger(eventSeq) && eventSeq > 0 ? eventSeq : 0,
    eventId: last?.header.get("Nats-Msg-Id") ?? "",
  };
}
