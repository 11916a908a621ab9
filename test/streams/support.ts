/**
 * Shared pieces of the list/stream/watch suites: admin clients, a background WatchUsers reader that
 * records every message and how the stream ended (for connect-node transports and for @grpc/grpc-js),
 * polling, and the change log as the database has it.
 */
import { create, fromBinary, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  type UserService,
  WatchEventType,
  WatchUsersRequestSchema,
  type WatchUsersResponse,
  WatchUsersResponseSchema,
} from "../../gen/user/v1/user_service_pb.js";
import { clients, grpcJsClient, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { ADMIN, type TestServer } from "../helpers/server.ts";

/** Logs in (over gRPC) and returns the access token. */
export async function loginToken(url: string, email = ADMIN.email, password = ADMIN.password): Promise<string> {
  const token = (await clients(url, "grpc").auth.login({ email, password })).tokens?.accessToken;
  if (!token) throw new Error("Login returned no access token");
  return token;
}

/** The UserService client of `token`'s holder over `transport`. */
export function usersAs(
  server: TestServer,
  token: string,
  transport: TransportName = "grpc",
): Client<typeof UserService> {
  return clients(server.url, transport, () => token).users;
}

/** Resolves once `check` returns true; fails after `timeoutMs` with `what` in the message. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How a stream ended with an error: status code and ErrorInfo reason (when there is one). */
export interface StreamEnd {
  code: Code;
  reason: string | undefined;
  message: string;
}

type Source = (signal: AbortSignal) => AsyncIterable<WatchUsersResponse>;

/** A WatchUsers call read in the background. */
export class Watcher {
  readonly events: WatchUsersResponse[] = [];
  /** Set when the stream ended with an error the test did not cause by stopping it. */
  error: StreamEnd | undefined;
  ended = false;
  readonly done: Promise<void>;
  readonly #abort = new AbortController();

  constructor(source: Source) {
    this.done = (async () => {
      try {
        for await (const e of source(this.#abort.signal)) this.events.push(e);
      } catch (err) {
        if (!this.#abort.signal.aborted) {
          const e = ConnectError.from(err);
          this.error = { code: e.code, reason: e.findDetails(ErrorInfoSchema)[0]?.reason, message: e.rawMessage };
        }
      } finally {
        this.ended = true;
      }
    })();
  }

  /** Every message but heartbeats. */
  changes(): WatchUsersResponse[] {
    return this.events.filter((e) => e.type !== WatchEventType.HEARTBEAT);
  }

  /** The change events (CREATED, UPDATED, DELETED, UNDELETED) after the SYNCED marker (or all, without one). */
  live(): WatchUsersResponse[] {
    const synced = this.events.findIndex((e) => e.type === WatchEventType.SYNCED);
    return this.events
      .slice(synced + 1)
      .filter((e) => e.type !== WatchEventType.HEARTBEAT && e.type !== WatchEventType.INITIAL);
  }

  /** The resume token of the last message received. */
  lastToken(): string {
    const last = this.events[this.events.length - 1];
    if (!last) throw new Error("no message received yet");
    return last.resumeToken;
  }

  async synced(timeoutMs = 10_000): Promise<this> {
    await until(() => this.ended || this.events.some((e) => e.type === WatchEventType.SYNCED), "SYNCED", timeoutMs);
    if (this.error) throw new Error(`watch ended before SYNCED: [${Code[this.error.code]}] ${this.error.message}`);
    return this;
  }

  /** Waits until `n` live change events arrived. */
  async liveCount(n: number, timeoutMs = 10_000): Promise<WatchUsersResponse[]> {
    await until(
      () => this.ended || this.live().length >= n,
      `${n} live events (have ${this.live().length})`,
      timeoutMs,
    );
    if (this.live().length < n)
      throw new Error(`watch ended with ${this.live().length} of ${n} events: ${JSON.stringify(this.error)}`);
    return this.live();
  }

  /** Waits for the stream to end by itself (an error or a clean end). */
  async ends(timeoutMs = 10_000): Promise<StreamEnd | undefined> {
    await until(() => this.ended, "the stream to end", timeoutMs);
    return this.error;
  }

  /** Cancels the call (the client goes away) and waits for the reader to stop. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.done;
  }
}

type WatchRequest = MessageInitShape<typeof WatchUsersRequestSchema>;

/** Watches through a connect-node transport. */
export function watch(server: TestServer, token: string, transport: TransportName, req: WatchRequest): Watcher {
  const users = usersAs(server, token, transport);
  return new Watcher((signal) => users.watchUsers(req, { signal }));
}

/** The ConnectError equivalent of a grpc-js failure, with the ErrorInfo of `grpc-status-details-bin`. */
function fromGrpcJs(err: grpc.ServiceError): ConnectError {
  const e = new ConnectError(err.details, err.code as number as Code);
  const bin = err.metadata?.get("grpc-status-details-bin")[0];
  if (bin) {
    for (const d of fromBinary(StatusSchema, bin as Buffer).details) {
      e.details.push({ type: d.typeUrl.slice(d.typeUrl.lastIndexOf("/") + 1), value: d.value, debug: undefined });
    }
  }
  return e;
}

/** Watches through @grpc/grpc-js (a server-streaming call on its own channel). */
export function watchGrpcJs(server: TestServer, token: string, req: WatchRequest): Watcher {
  return new Watcher(async function* (signal) {
    const client = grpcJsClient(server.port);
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    const call = client.makeServerStreamRequest(
      "/user.v1.UserService/WatchUsers",
      (m: MessageShape<typeof WatchUsersRequestSchema>) => Buffer.from(toBinary(WatchUsersRequestSchema, m)),
      (b: Buffer) => fromBinary(WatchUsersResponseSchema, b),
      create(WatchUsersRequestSchema, req),
      md,
    );
    signal.addEventListener("abort", () => call.cancel(), { once: true });
    try {
      for await (const m of call) yield m as WatchUsersResponse;
    } catch (err) {
      throw fromGrpcJs(err as grpc.ServiceError);
    } finally {
      client.close();
    }
  });
}

/** One change-log row as `user_id:etag:type`, the shape `eventKey` gives a watch event. */
export interface LoggedChange {
  seq: string;
  key: string;
}

const typeNames: Record<number, string> = {
  [WatchEventType.CREATED]: "created",
  [WatchEventType.UPDATED]: "updated",
  [WatchEventType.DELETED]: "deleted",
  [WatchEventType.UNDELETED]: "undeleted",
};

/** A change event as `user_id:etag:type`: unique per change, since every write bumps the etag. */
export function eventKey(e: WatchUsersResponse): string {
  return `${e.user?.id}:${e.user?.etag}:${typeNames[e.type] ?? WatchEventType[e.type]}`;
}

/**
 * Numbers every change committed so far (the change log's sequencer, as the writing process runs it right
 * after its commit): a write has answered before its change has a seq, and the helpers below read by seq.
 */
export async function sequenceAll(url: string): Promise<void> {
  await query(url, "select user_changes_sequence(true, 1000000)");
}

/** The change log after `afterSeq`, in seq (commit) order, keyed like `eventKey`. */
export async function loggedChanges(url: string, afterSeq: string, where = "true"): Promise<LoggedChange[]> {
  await sequenceAll(url);
  const rows = await query<{ seq: string; user_id: string; version: string; type: string }>(
    url,
    `select seq, user_id, snapshot->>'version' as version, type from user_changes where seq > $1 and (${where}) order by seq`,
    [afterSeq],
  );
  return rows.map((r) => ({ seq: r.seq, key: `${r.user_id}:W/"${r.version}":${r.type}` }));
}

/** The last seq of the change log. */
export async function lastSeq(url: string): Promise<string> {
  await sequenceAll(url);
  const [row] = await query<{ seq: string | null }>(url, "select coalesce(max(seq), 0)::text as seq from user_changes");
  return row.seq ?? "0";
}
