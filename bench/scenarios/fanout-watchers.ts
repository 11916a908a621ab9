/**
 * A watcher process of the fan-out scenario: its share of the WatchUsers streams, over gRPC on HTTP/2
 * (node:http2, `streamsPerConnection` streams per connection, below the service's H2_MAX_CONCURRENT_STREAMS).
 *
 * A lean client, so that the watchers' CPU (on the same 2 cores as the service) stays small: the gRPC
 * framing is read by hand and each WatchUsersResponse is walked for only what the check needs (type,
 * event_time, resume_token, and the labels `bench_run`, `bench_n`, `bench_sent`). The first messages of
 * each process are decoded by the generated code too and compared, so the lean decoder is checked on the
 * service's real output in every run.
 *
 * For each watcher it records which measured writes (`bench_run` = the phase's run id, numbered by
 * `bench_n`) it received, duplicates included, and the latency from the event's event_time (the change
 * row's commit-time stamp) and from the writer's send time to the moment the message was read. A stream
 * that ends with UNAVAILABLE (the service ends a watcher that fell too far behind) or that loses its
 * connection is resumed with its last resume_token, as the API prescribes; any other end is an error.
 *
 * IPC: `start` (WatchersStart), then `progress` every 250 ms; on `finish`, the `result`, then it exits.
 */
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WatchUsersRequestSchema, WatchUsersResponseSchema } from "../../gen/user/v1/user_service_pb.js";
import {
  bitsToBase64,
  epochNow,
  Histogram,
  hasBit,
  newBits,
  setBit,
  type WatcherOutcome,
  type WatcherSpec,
  type WatchersProgress,
  type WatchersResult,
  type WatchersStart,
} from "./fanout-shared.ts";

/** WatchEventType.UPDATED on the wire. */
const UPDATED = 4;
/** Messages per process decoded twice to check the lean decoder. */
const CROSS_CHECKS = 200;
/** Resumes allowed per watcher before it counts as failed. */
const MAX_RESUMES = 50;

// ---------------------------------------------------------------------------------------------------------
// The lean WatchUsersResponse decoder.

/** What the benchmark reads of one WatchUsersResponse. */
export interface LeanEvent {
  type: number;
  /** event_time in epoch ms (NaN when absent). */
  eventMs: number;
  resumeToken: string;
  run: string | undefined;
  n: string | undefined;
  sent: string | undefined;
}

function varint(buf: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (at >= buf.length) throw new Error("truncated varint");
    const b = buf[at++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, at];
    scale *= 128;
  }
}

/** Visits the fields of the message in buf[start, end): `onLen` for length-delimited, `onVarint` for varints. */
function walk(
  buf: Buffer,
  start: number,
  end: number,
  onLen: (field: number, from: number, to: number) => void,
  onVarint?: (field: number, value: number) => void,
): void {
  let at = start;
  while (at < end) {
    const [tag, next] = varint(buf, at);
    const field = Math.floor(tag / 8);
    switch (tag & 7) {
      case 0: {
        const [value, after] = varint(buf, next);
        onVarint?.(field, value);
        at = after;
        break;
      }
      case 1:
        at = next + 8;
        break;
      case 2: {
        const [length, body] = varint(buf, next);
        onLen(field, body, body + length);
        at = body + length;
        break;
      }
      case 5:
        at = next + 4;
        break;
      default:
        throw new Error(`unexpected wire type ${tag & 7}`);
    }
  }
  if (at !== end) throw new Error("field overruns its message");
}

/** Reads a WatchUsersResponse: type (1), user (2) -> labels (6, map entries key 1 / value 2), event_time (3), resume_token (4). */
export function decodeLean(buf: Buffer): LeanEvent {
  const e: LeanEvent = {
    type: 0,
    eventMs: Number.NaN,
    resumeToken: "",
    run: undefined,
    n: undefined,
    sent: undefined,
  };
  walk(
    buf,
    0,
    buf.length,
    (field, from, to) => {
      if (field === 2) {
        walk(buf, from, to, (userField, uFrom, uTo) => {
          if (userField !== 6) return;
          let key = "";
          let value = "";
          walk(buf, uFrom, uTo, (entryField, eFrom, eTo) => {
            if (entryField === 1) key = buf.toString("latin1", eFrom, eTo);
            else if (entryField === 2) value = buf.toString("utf8", eFrom, eTo);
          });
          if (key === "bench_run") e.run = value;
          else if (key === "bench_n") e.n = value;
          else if (key === "bench_sent") e.sent = value;
        });
      } else if (field === 3) {
        let seconds = 0;
        let nanos = 0;
        walk(
          buf,
          from,
          to,
          () => {},
          (tf, v) => {
            if (tf === 1) seconds = v;
            else if (tf === 2) nanos = v;
          },
        );
        e.eventMs = seconds * 1000 + nanos / 1e6;
      } else if (field === 4) {
        e.resumeToken = buf.toString("utf8", from, to);
      }
    },
    (field, value) => {
      if (field === 1) e.type = value;
    },
  );
  return e;
}

/** The same fields through the generated code: the reference the lean decoder is checked against. */
function decodeFull(buf: Buffer): LeanEvent {
  const m = fromBinary(WatchUsersResponseSchema, buf);
  const labels = m.user?.labels ?? {};
  return {
    type: m.type,
    eventMs: m.eventTime ? Number(m.eventTime.seconds) * 1000 + m.eventTime.nanos / 1e6 : Number.NaN,
    resumeToken: m.resumeToken,
    run: labels.bench_run,
    n: labels.bench_n,
    sent: labels.bench_sent,
  };
}

function sameEvent(a: LeanEvent, b: LeanEvent): boolean {
  return (
    a.type === b.type &&
    (a.eventMs === b.eventMs || (Number.isNaN(a.eventMs) && Number.isNaN(b.eventMs))) &&
    a.resumeToken === b.resumeToken &&
    a.run === b.run &&
    a.n === b.n &&
    a.sent === b.sent
  );
}

// ---------------------------------------------------------------------------------------------------------
// The process.

function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

function main(): void {
  const send = (m: WatchersProgress | WatchersResult) => process.send?.(m);
  let config: WatchersStart | undefined;
  let finishing = false;

  const commitAll = new Histogram();
  const commitFiltered = new Histogram();
  const fromSent = new Histogram();
  const errors: string[] = [];
  let ready = 0;
  let received = 0;
  let failed = 0;
  let resumes = 0;
  let reconnects = 0;
  let checked = 0;
  const openStreams = new Set<http2.ClientHttp2Stream>();

  interface Connection {
    session: http2.ClientHttp2Session;
  }
  const connections: Connection[] = [];

  function connect(baseUrl: string): http2.ClientHttp2Session {
    // Large windows, so HTTP/2 flow control between two processes on one machine adds no wait of its own.
    const session = http2.connect(baseUrl, { settings: { initialWindowSize: 1 << 20 } });
    session.on("connect", () => session.setLocalWindowSize(16 << 20));
    session.on("error", (err) => {
      if (!finishing && errors.length < 20) errors.push(`connection: ${err.message}`);
    });
    return session;
  }

  function sessionOf(c: Connection, baseUrl: string): http2.ClientHttp2Session {
    if (c.session.closed || c.session.destroyed) {
      c.session = connect(baseUrl);
      reconnects++;
    }
    return c.session;
  }

  interface Watcher {
    spec: WatcherSpec;
    connection: Connection;
    filtered: boolean;
    ready: boolean;
    received: number;
    duplicates: number;
    malformed: number;
    seen: Uint8Array;
    resumeToken: string;
    resumes: number;
  }

  function open(w: Watcher, c: WatchersStart): void {
    const session = sessionOf(w.connection, c.baseUrl);
    const stream = session.request({
      ":method": "POST",
      ":path": "/user.v1.UserService/WatchUsers",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${c.token}`,
    });
    openStreams.add(stream);
    stream.end(
      grpcFrame(
        toBinary(
          WatchUsersRequestSchema,
          create(WatchUsersRequestSchema, { filter: w.spec.filter, resumeToken: w.resumeToken }),
        ),
      ),
    );
    let status: string | undefined;
    let statusMessage = "";
    let failure = "";
    const takeStatus = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) {
        status = String(h["grpc-status"]);
        statusMessage = decodeURIComponent(String(h["grpc-message"] ?? ""));
      }
    };
    stream.on("response", (h) => {
      if (h[":status"] !== 200) failure = `HTTP ${h[":status"]}`;
      takeStatus(h);
    });
    stream.on("trailers", takeStatus);
    stream.on("error", (err) => {
      failure ||= err.message;
    });

    let pending: Buffer | undefined;
    stream.on("data", (chunk: Buffer) => {
      const t = epochNow();
      const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      let at = 0;
      try {
        while (buf.length - at >= 5) {
          const length = buf.readUInt32BE(at + 1);
          if (buf.length - at - 5 < length) break;
          if (buf[at] !== 0) throw new Error(`unexpected gRPC frame flags ${buf[at]}`);
          onMessage(w, buf.subarray(at + 5, at + 5 + length), t, c);
          at += 5 + length;
        }
      } catch (err) {
        failure = `decoding: ${err instanceof Error ? err.message : String(err)}`;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      pending = at < buf.length ? buf.subarray(at) : undefined;
    });

    stream.on("close", () => {
      openStreams.delete(stream);
      if (finishing) return;
      // UNAVAILABLE (fell behind, shutdown) and a lost connection are what resume_token is for.
      const resumable = (status === "14" || (status === undefined && !failure.startsWith("decoding"))) && w.resumeToken;
      if (resumable && w.resumes < MAX_RESUMES) {
        w.resumes++;
        resumes++;
        setImmediate(() => open(w, c));
        return;
      }
      failed++;
      if (errors.length < 20) {
        const why = status !== undefined ? `grpc-status ${status} ${statusMessage}` : failure || "closed";
        errors.push(`watcher ${w.spec.id} (${w.spec.filter || "no filter"}): stream ended: ${why}`);
      }
    });
  }

  function onMessage(w: Watcher, message: Buffer, t: number, c: WatchersStart): void {
    const e = decodeLean(message);
    if (checked < CROSS_CHECKS) {
      checked++;
      const full = decodeFull(message);
      if (!sameEvent(e, full))
        throw new Error(`lean decoder disagrees: ${JSON.stringify(e)} vs ${JSON.stringify(full)}`);
    }
    if (e.resumeToken) w.resumeToken = e.resumeToken;
    if (e.type !== UPDATED) return;
    if (!w.ready) {
      w.ready = true;
      ready++;
    }
    if (e.run !== c.runId) return;
    const n = Number(e.n);
    if (!Number.isInteger(n) || n < 0 || n >= c.writes) {
      w.malformed++;
      return;
    }
    w.received++;
    if (hasBit(w.seen, n)) {
      w.duplicates++;
      return;
    }
    setBit(w.seen, n);
    received++;
    (w.filtered ? commitFiltered : commitAll).record(t - e.eventMs);
    if (e.sent !== undefined) fromSent.record(t - Number(e.sent));
  }

  let watchers: Watcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const cpu0 = process.cpuUsage();

  process.on("message", (m: WatchersStart | { type: "finish" }) => {
    if (m.type === "start") {
      config = m;
      const c = m;
      const count = Math.ceil(m.watchers.length / m.streamsPerConnection);
      for (let i = 0; i < count; i++) connections.push({ session: connect(m.baseUrl) });
      watchers = m.watchers.map((spec, i) => ({
        spec,
        connection: connections[Math.floor(i / m.streamsPerConnection)],
        filtered: spec.filter !== "",
        ready: false,
        received: 0,
        duplicates: 0,
        malformed: 0,
        seen: newBits(m.writes),
        resumeToken: "",
        resumes: 0,
      }));
      for (const w of watchers) open(w, c);
      timer = setInterval(() => send({ type: "progress", ready, received, failed, resumes }), 250);
      return;
    }
    if (m.type !== "finish" || !config) return;
    finishing = true;
    clearInterval(timer);
    const cpu = process.cpuUsage(cpu0);
    const outcomes: WatcherOutcome[] = watchers.map((w) => ({
      id: w.spec.id,
      received: w.received,
      duplicates: w.duplicates,
      malformed: w.malformed,
      seen: bitsToBase64(w.seen),
    }));
    const result: WatchersResult = {
      type: "result",
      watchers: outcomes,
      commitAll: commitAll.sparse(),
      commitFiltered: commitFiltered.sparse(),
      fromSent: fromSent.sparse(),
      connections: connections.length,
      resumes,
      reconnects,
      checked,
      errors,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    // Only once the result is handed to the channel: disconnecting earlier can drop it.
    process.send?.(result, undefined, {}, () => {
      for (const s of openStreams) s.close(http2.constants.NGHTTP2_CANCEL);
      for (const c of connections) c.session.destroy();
      process.disconnect();
      setTimeout(() => process.exit(0), 200).unref();
    });
  });
  // The parent is gone: nothing to report to.
  process.on("disconnect", () => {
    if (!finishing) process.exit(0);
  });
}

if (import.meta.main) main();
