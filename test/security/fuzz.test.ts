/**
 * Fuzzing every request message of the contract over the wire. The methods are found by iterating the
 * service descriptors of UserService and AuthService, so a new method is covered without touching this file.
 * For each method, as the admin (so that authorization passes and the request reaches the handler):
 *  - random bytes as the body, over gRPC (grpc-js) and as a Connect JSON body (HTTP/1.1);
 *  - messages built from plausible values (a valid email, an existing user id, a long password) with string
 *    fields swapped for edge strings: NUL, invalid UTF-8 at the wire level, 10,000 characters, RTL and
 *    zero-width marks, emoji, SQL and format-string injections, whitespace only; numbers at their limits,
 *    random enum numbers, huge repeated fields and maps within the message limit; over gRPC (grpc-js, raw
 *    bytes) and Connect JSON over HTTP/1.1 (connect-node). Server streams send their one request;
 *    ImportUsers sends a few fuzzed rows.
 * Every answer must be a success or a contract error: never INTERNAL, UNAVAILABLE or UNKNOWN, always with
 * an ErrorInfo, and no answer or log line may hold SQL from our queries, a stack trace or a password hash.
 * The process stays up. Seeded: the seed is printed, and FUZZ_SEED=<seed> replays a run.
 */
import { randomUUID } from "node:crypto";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type Message,
  ScalarType,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, type Member } from "../helpers/accounts.ts";
import { transport } from "../helpers/clients.ts";
import { fromGrpcJsError, type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const SERVICES: DescService[] = [UserService, AuthService];

// ---------------------------------------------------------------------------------------------------------
// The oracle: what no answer may ever be.

const FORBIDDEN_CODES = [Code.Internal, Code.Unavailable, Code.Unknown];
/** SQL of our queries (src/**): statements and clauses that only a leaked query would show a caller. */
const SQL =
  /\b(select\s+[\w*"]|insert\s+into|update\s+\w+\s+set|delete\s+from|returning\s+\w|on\s+conflict|where\s+\w+\s*(=|in|is|<|>)|lower\(email\)|refresh_tokens|login_failures|idempotency_keys)/i;
const STACK = /^\s{4}at /m;
const HASH = /\$argon2id\$|\$2[aby]\$\d\d\$/;

/** What is wrong with an answer (an error, or the text of a response), or undefined when it is fine. */
function verdict(answer: { error?: ConnectError; text?: string }): string | undefined {
  const e = answer.error;
  if (e) {
    if (FORBIDDEN_CODES.includes(e.code)) return `answered ${Code[e.code]}: ${e.rawMessage}`;
    if (e.findDetails(ErrorInfoSchema).length === 0) return `error without ErrorInfo: ${Code[e.code]} ${e.rawMessage}`;
  }
  // Details as received are encoded messages: their bytes read as text show any SQL or trace they carry.
  const details = e?.details.map((d) =>
    "desc" in d ? JSON.stringify(d.value) : Buffer.from(d.value).toString("latin1"),
  );
  const text = e ? `${e.rawMessage}\n${details?.join("\n")}` : (answer.text ?? "");
  if (e && SQL.test(text)) return `SQL in an error: ${text.slice(0, 300)}`;
  if (STACK.test(text)) return `stack trace in an answer: ${text.slice(0, 300)}`;
  if (HASH.test(text)) return "password hash in an answer";
  return undefined;
}

/** What is wrong with the server's log, or undefined. */
function logVerdict(log: string): string | undefined {
  for (const line of log.split("\n")) {
    if (SQL.test(line)) return `SQL in a log line: ${line.slice(0, 300)}`;
    if (STACK.test(line) || line.includes("\\n    at ")) return `stack trace in a log line: ${line.slice(0, 300)}`;
    if (HASH.test(line)) return `password hash in a log line: ${line.slice(0, 300)}`;
    if (/"code":"(INTERNAL|UNAVAILABLE|UNKNOWN)"/.test(line)) return `logged as failed: ${line.slice(0, 300)}`;
  }
  return undefined;
}

describe("the fuzz oracle", () => {
  // The fuzz run below passes only if this can say no.
  const info = { desc: ErrorInfoSchema, value: { reason: "X", domain: "d" } };
  it("flags INTERNAL, UNAVAILABLE, UNKNOWN, a missing ErrorInfo, SQL, stack traces and hashes", () => {
    expect(verdict({ error: new ConnectError("internal error", Code.Internal, undefined, [info]) })).toMatch(
      /Internal/,
    );
    expect(verdict({ error: new ConnectError("retry later", Code.Unavailable, undefined, [info]) })).toMatch(
      /Unavailable/,
    );
    expect(verdict({ error: new ConnectError("?", Code.Unknown, undefined, [info]) })).toMatch(/Unknown/);
    expect(verdict({ error: new ConnectError("bad", Code.InvalidArgument) })).toMatch(/without ErrorInfo/);
    const leak = "insert into users (id, email) values ($1, $2) returning id";
    expect(verdict({ error: new ConnectError(leak, Code.InvalidArgument, undefined, [info]) })).toMatch(/SQL/);
    expect(verdict({ text: "Error: boom\n    at handler (src/x.ts:1:1)" })).toMatch(/stack/);
    expect(verdict({ text: '{"x":"$argon2id$v=19$m=19456,t=2,p=1$abc$def"}' })).toMatch(/hash/);
    expect(logVerdict('{"level":50,"code":"INTERNAL","msg":"rpc"}')).toMatch(/failed/);
    expect(verdict({ error: new ConnectError("invalid request", Code.InvalidArgument, undefined, [info]) })).toBe(
      undefined,
    );
    expect(verdict({ text: '{"user":{"displayName":"\'; drop table users; --"}}' })).toBe(undefined);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The seeded generator.

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;

/** mulberry32: small, fast, good enough to replay a fuzz run from its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p: number) => next() < p,
    pick: <T>(list: readonly T[]): T => list[int(list.length)],
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => int(256))),
  };
}
type Rng = ReturnType<typeof prng>;

/**
 * A private-use character that the sender swaps for invalid UTF-8 of the same length in the encoded bytes
 * (protobuf-es cannot encode invalid UTF-8 itself): U+E000 is EE 80 80 in UTF-8.
 */
const INVALID_UTF8 = "\uE000";
const INVALID_SEQUENCES = [
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate (U+D800) encoded as UTF-8
  [0xc0, 0xaf, 0x41], // an overlong '/'
  [0xff, 0xfe, 0x80], // bytes that never occur in UTF-8
];

const EDGE_STRINGS = [
  "",
  "\u0000",
  `a\u0000b`,
  `${INVALID_UTF8}`,
  `name${INVALID_UTF8}`,
  "\uD800", // a lone surrogate: only JSON can carry it as such
  "x".repeat(10_000),
  "é".repeat(10_000),
  "\u202Eevil\u202C\u200B\u200D\uFEFF",
  "😀👩‍👩‍👧‍👦🏳️‍🌈",
  "'; drop table users; --",
  '" or 1=1 --',
  "%s%n%x%d",
  "$" + "{jndi:ldap://x}", // log4shell-style lookup
  "   \t\n\r ",
  "\\",
  "__proto__",
  'email = "a@example.com" AND display_name = "x"',
];

/** A value that passes validation for a field of this name, so that fuzzing reaches the handler. */
function plausible(field: DescField, ctx: Context, rng: Rng): string | undefined {
  const name = field.name;
  if (name === "email") return `fuzz-${randomUUID().slice(0, 8)}@example.com`;
  if (name === "user_id" || name === "user_ids" || name === "id") return rng.pick(ctx.userIds);
  if (name === "request_id") return randomUUID();
  if (name.includes("password") && name !== "password_hash") return `fuzz-password-${rng.int(1e9)}`;
  if (name === "password_hash") return ctx.argonHash;
  if (name === "display_name") return "Fuzz Name";
  if (name === "filter") return rng.pick(['email = "a@example.com"', 'display_name = "x"', ""]);
  if (name === "order_by") return rng.pick(["email", "create_time desc", ""]);
  if (name === "paths") return rng.pick(["display_name", "labels", "email"]);
  if (name === "etag" || name.endsWith("token")) return "";
  return undefined;
}

interface Context {
  userIds: string[];
  argonHash: string;
}

function edgeString(rng: Rng): string {
  return rng.chance(0.85) ? rng.pick(EDGE_STRINGS) : rng.bytes(rng.int(20)).toString("latin1");
}

function scalarValue(field: DescField, type: ScalarType, rng: Rng, ctx: Context, edgy: boolean): unknown {
  if (type === ScalarType.STRING)
    return edgy ? edgeString(rng) : (plausible(field, ctx, rng) ?? `fuzz ${rng.int(1000)}`);
  if (type === ScalarType.BOOL) return rng.chance(0.5);
  if (type === ScalarType.BYTES) return new Uint8Array(rng.bytes(rng.int(64)));
  if (!edgy) return is64(type) ? BigInt(rng.int(100)) : rng.int(100);
  switch (type) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return rng.pick([-1, 2147483647, -2147483648]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return 4294967295;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rng.pick([-1n, 9223372036854775807n, -9223372036854775808n]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 18446744073709551615n;
    default:
      return rng.pick([-0, 1e308, -1e-308, Number.POSITIVE_INFINITY, Number.NaN]);
  }
}

const is64 = (t: ScalarType) =>
  [ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64, ScalarType.UINT64, ScalarType.FIXED64].includes(t);

/** A defined value of the enum, or (edgy) any number, defined or not. */
function enumValue(field: DescField, rng: Rng, edgy: boolean): number {
  const values = field.enum?.values.map((v) => v.number) ?? [0];
  return edgy ? rng.pick([-1, 99, 2147483647, -2147483648, ...values]) : rng.pick(values);
}

/**
 * How a message is fuzzed: each value is an edge value with probability `edge`; the value (string, number,
 * enum or map key) numbered `target` in build order is one for sure (so that one bad value travels with valid ones, deep
 * enough to reach the database); `huge` fills repeated fields and maps to about 1-2 MB.
 */
interface FuzzOptions {
  edge: number;
  target?: number;
  huge?: boolean;
  /** Counts the strings built so far (shared by the nested messages of one request). */
  leaves: { n: number };
}

/** A message of type `desc` (see FuzzOptions); nested messages down to depth 3. */
function fuzzMessage(desc: DescMessage, rng: Rng, ctx: Context, opts: FuzzOptions, depth = 0) {
  const msg = create(desc);
  const r = reflect(desc, msg);
  const oneofsDone = new Set<string>();
  for (const field of desc.fields) {
    if (field.oneof) {
      if (oneofsDone.has(field.oneof.name)) continue;
      oneofsDone.add(field.oneof.name);
      if (rng.chance(0.15)) continue;
      const member = rng.pick(field.oneof.fields);
      setField(r, member, rng, ctx, opts, depth);
      continue;
    }
    if (!opts.huge && rng.chance(0.1)) continue; // sometimes absent
    setField(r, field, rng, ctx, opts, depth);
  }
  return msg;
}

function setField(
  r: ReturnType<typeof reflect>,
  field: DescField,
  rng: Rng,
  ctx: Context,
  opts: FuzzOptions,
  depth: number,
) {
  const edgy = () => opts.leaves.n++ === opts.target || rng.chance(opts.edge);
  try {
    switch (field.fieldKind) {
      case "scalar":
        r.set(field, scalarValue(field, field.scalar, rng, ctx, edgy()) as never);
        break;
      case "enum":
        r.set(field, enumValue(field, rng, edgy()) as never);
        break;
      case "message":
        if (depth < 3) r.set(field, reflect(field.message, fuzzMessage(field.message, rng, ctx, opts, depth + 1)));
        break;
      case "list": {
        const list = r.get(field);
        const n = opts.huge ? 20_000 : rng.int(4);
        for (let i = 0; i < n; i++) {
          if (field.listKind === "scalar") list.add(scalarValue(field, field.scalar, rng, ctx, edgy()) as never);
          else if (field.listKind === "enum") list.add(enumValue(field, rng, edgy()) as never);
          else if (depth < 3)
            list.add(reflect(field.message, fuzzMessage(field.message, rng, ctx, { ...opts, huge: false }, depth + 1)));
        }
        break;
      }
      case "map": {
        const map = r.get(field);
        const n = opts.huge ? 10_000 : rng.int(4);
        for (let i = 0; i < n; i++) {
          const key = field.mapKey === ScalarType.STRING ? (edgy() ? edgeString(rng) : `k${i}`) : i;
          const value =
            field.mapKind === "scalar"
              ? scalarValue(field, field.scalar, rng, ctx, edgy())
              : field.mapKind === "enum"
                ? enumValue(field, rng, edgy())
                : reflect(field.message, fuzzMessage(field.message, rng, ctx, { ...opts, huge: false }, depth + 1));
          map.set(key as never, value as never);
        }
        break;
      }
    }
  } catch {
    // A value reflection refuses (e.g. a key type mismatch) is simply left out.
  }
}

/** The message's binary encoding with every INVALID_UTF8 placeholder replaced by invalid UTF-8 bytes. */
function wireBytes(desc: DescMessage, msg: Message, rng: Rng): Buffer {
  const bytes = Buffer.from(toBinary(desc, msg));
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0xee && bytes[i + 1] === 0x80 && bytes[i + 2] === 0x80) {
      bytes.set(rng.pick(INVALID_SEQUENCES), i);
      i += 2;
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------
// Sending: grpc-js with raw bytes, connect-node Connect JSON over HTTP/1.1, fetch for raw JSON bodies.

let server: TestServer;
let grpcjs: GrpcJs;
let admin: string;
let member: Member;
let ctx: Context;

beforeAll(async () => {
  console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
  server = await startTestServer();
  grpcjs = grpcJs(server.port);
  admin = await adminToken(server.url);
  member = await createMember(server.url, admin, { prefix: "fuzz", labels: { team: "blue" } });
  const { hashPassword } = await import("../../src/passwords/passwords.ts");
  ctx = { userIds: [member.user.id, randomUUID()], argonHash: await hashPassword("fuzz-imported-password") };
}, 60_000);
afterAll(async () => {
  grpcjs?.close();
  await server?.close();
});

const metadata = () => {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${admin}`);
  return md;
};
const DEADLINE_MS = 5_000;

/** Sends already-encoded request messages over grpc-js; resolves with the error or response text. */
function grpcSend(method: DescMethod, messages: Buffer[]): Promise<{ error?: ConnectError; text?: string }> {
  const path = `/${method.parent.typeName}/${method.name}`;
  const deserialize = (b: Buffer) => fromBinary(method.output, b);
  const serialize = (b: Buffer) => b;
  const deadline = Date.now() + DEADLINE_MS;
  return new Promise((done) => {
    const finish = (error: grpc.ServiceError | null, response?: unknown) =>
      done(
        error ? { error: fromGrpcJsError(error) } : { text: JSON.stringify(toJson(method.output, response as never)) },
      );
    switch (method.methodKind) {
      case "unary":
        grpcjs.client.makeUnaryRequest(path, serialize, deserialize, messages[0], metadata(), { deadline }, finish);
        break;
      case "client_streaming": {
        const call = grpcjs.client.makeClientStreamRequest(
          path,
          serialize,
          deserialize,
          metadata(),
          { deadline },
          finish,
        );
        for (const m of messages) call.write(m);
        call.end();
        break;
      }
      case "server_streaming": {
        const call = grpcjs.client.makeServerStreamRequest(path, serialize, deserialize, messages[0], metadata(), {
          deadline,
        });
        const texts: string[] = [];
        // A watch never ends by itself: a few messages are enough, then the stream is cancelled.
        call.on("data", (m: unknown) => {
          texts.push(JSON.stringify(toJson(method.output, m as never)));
          if (texts.length >= 3) call.cancel();
        });
        call.on("error", (e: grpc.ServiceError) =>
          done(e.code === grpc.status.CANCELLED ? { text: texts.join("\n") } : { error: fromGrpcJsError(e) }),
        );
        call.on("end", () => done({ text: texts.join("\n") }));
        setTimeout(() => call.cancel(), 1_000).unref();
        break;
      }
      default:
        done({});
    }
  });
}

const connectJson = () => transport(server.url, "connect-json-h1", () => admin);

/** Sends messages with connect-node's Connect JSON transport over HTTP/1.1. */
async function connectSend(method: DescMethod, messages: Message[]): Promise<{ error?: ConnectError; text?: string }> {
  const t = connectJson();
  const abort = new AbortController();
  // A watch never ends by itself: it is hung up on after a second.
  const timer = method.methodKind === "server_streaming" ? setTimeout(() => abort.abort(), 1_000) : undefined;
  const opts = { signal: abort.signal, timeoutMs: DEADLINE_MS };
  try {
    const client = createClient(method.parent, t) as unknown as Record<string, (...a: unknown[]) => unknown>;
    const call = client[method.localName];
    if (method.methodKind === "unary") {
      const res = await (call(messages[0], opts) as Promise<Message>);
      return { text: JSON.stringify(toJson(method.output, res as never)) };
    }
    if (method.methodKind === "client_streaming") {
      const res = await (call(
        (async function* () {
          yield* messages;
        })(),
        opts,
      ) as Promise<Message>);
      return { text: JSON.stringify(toJson(method.output, res as never)) };
    }
    const texts: string[] = [];
    for await (const m of call(messages[0], opts) as AsyncIterable<Message>) {
      texts.push(JSON.stringify(toJson(method.output, m as never)));
      if (texts.length >= 3) break;
    }
    return { text: texts.join("\n") };
  } catch (err) {
    if (abort.signal.aborted) return {}; // we hung up on a stream that was still going: nothing to judge
    return { error: ConnectError.from(err) };
  } finally {
    clearTimeout(timer);
  }
}

/** Posts raw bytes as a Connect JSON unary request (or as a Connect JSON stream's one envelope). */
async function jsonBytesSend(method: DescMethod, body: Buffer): Promise<{ error?: ConnectError; text?: string }> {
  const unary = method.methodKind === "unary";
  const framed = unary ? body : Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
  if (!unary) framed.writeUInt32BE(body.length, 1);
  const res = await fetch(`${server.url}/${method.parent.typeName}/${method.name}`, {
    method: "POST",
    headers: {
      "content-type": unary ? "application/json" : "application/connect+json",
      authorization: `Bearer ${admin}`,
      "connect-timeout-ms": String(DEADLINE_MS),
    },
    body: framed,
    signal: AbortSignal.timeout(2_000),
  }).catch((err: unknown) => err as Error);
  if (res instanceof Error) return {}; // a stream we hung up on
  const text = Buffer.from(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
  if (unary && res.status !== 200) {
    const { errorFromJsonBytes } = await import("@connectrpc/connect/protocol-connect");
    return { error: errorFromJsonBytes(text, undefined, new ConnectError("unparsable error", Code.Unknown)) };
  }
  if (!unary) {
    // The end-of-stream envelope (flag 0x02) holds the error, if any.
    const { endStreamFromJson } = await import("@connectrpc/connect/protocol-connect");
    for (let at = 0; at + 5 <= text.length; ) {
      const len = text.readUInt32BE(at + 1);
      if (text[at] & 0x02) {
        const end = endStreamFromJson(text.subarray(at + 5, at + 5 + len));
        if (end.error) return { error: end.error };
      }
      at += 5 + len;
    }
  }
  return { text: text.toString("latin1") };
}

/** Every method of the contract. */
const METHODS = SERVICES.flatMap((s) => s.methods);

/** Runs one exchange and records what is wrong with it. */
async function judge(problems: string[], what: string, answer: Promise<{ error?: ConnectError; text?: string }>) {
  const v = verdict(await answer);
  if (v) problems.push(`${what}: ${v}`);
}

describe("fuzzing every request message", () => {
  it("covers both services (a new method is picked up by itself)", () => {
    expect(METHODS.map((m) => m.name)).toEqual(
      expect.arrayContaining(["CreateUser", "ImportUsers", "Login", "SignUp"]),
    );
    expect(METHODS.length).toBeGreaterThanOrEqual(16);
  });

  it.each(METHODS.map((m) => [`${m.parent.name}.${m.name}`, m] as const))(
    "%s: random bytes and edge values never get INTERNAL, UNAVAILABLE or UNKNOWN, nor leak",
    async (_name, method) => {
      const rng = prng(SEED ^ hash(`${method.parent.typeName}/${method.name}`));
      const problems: string[] = [];
      const rows = method.methodKind === "client_streaming" ? 4 : 1;

      // (a) random bytes as the body.
      for (let i = 0; i < 6; i++) {
        const bodies = Array.from({ length: rows }, () => rng.bytes(rng.int(i === 0 ? 8 : 200)));
        await judge(problems, `random bytes #${i} over gRPC`, grpcSend(method, bodies));
      }
      for (let i = 0; i < 3; i++) {
        const body = rng.chance(0.5)
          ? rng.bytes(rng.int(200))
          : Buffer.from(`{"${rng.bytes(8).toString("latin1")}": 1}`);
        await judge(problems, `random bytes #${i} as Connect JSON`, jsonBytesSend(method, body));
      }

      // (b) fuzzed messages: first one edge value among plausible ones, each string in turn, then random mixes.
      const strings = { n: 0 };
      fuzzMessage(method.input, rng, ctx, { edge: 0, leaves: strings });
      for (let i = 0; i < 16; i++) {
        const targeted = i < 12;
        const edge = targeted ? 0 : rng.pick([0.2, 0.5, 1]);
        const target = targeted && strings.n > 0 ? i % strings.n : undefined;
        const messages = Array.from({ length: rows }, () =>
          fuzzMessage(method.input, rng, ctx, { edge, target, leaves: { n: 0 } }),
        );
        const label = `message #${i} ${JSON.stringify(messages.map((m) => summary(method.input, m))).slice(0, 400)}`;
        await judge(
          problems,
          `${label} over gRPC`,
          grpcSend(
            method,
            messages.map((m) => wireBytes(method.input, m, rng)),
          ),
        );
        if (messages.every((m) => encodableAsJson(method.input, m)))
          await judge(problems, `${label} over Connect JSON`, connectSend(method, messages));
      }
      // Huge repeated fields and maps, still under MAX_MESSAGE_BYTES.
      const huge = fuzzMessage(method.input, rng, ctx, { edge: 0.3, huge: true, leaves: { n: 0 } });
      const hugeBytes = wireBytes(method.input, huge, rng);
      if (hugeBytes.length < 4 * 1024 * 1024)
        await judge(problems, `huge message (${hugeBytes.length} bytes) over gRPC`, grpcSend(method, [hugeBytes]));

      expect(problems, `seed ${SEED}`).toEqual([]);
    },
    60_000,
  );

  it("left the server up, and its log free of SQL, stack traces, hashes and failed calls", async () => {
    const res = await createClient(UserService, connectJson()).getUser({ userId: member.user.id });
    expect(res.user?.id).toBe(member.user.id);
    expect(logVerdict(server.logText()), `seed ${SEED}`).toBe(undefined);
    expect(server.logText()).not.toContain("unexpected error");
  });
});

function encodableAsJson(desc: DescMessage, m: Message): boolean {
  try {
    toJson(desc, m);
    return true;
  } catch {
    return false;
  }
}

/** A short description of a fuzzed message for a failure report (long strings cut). */
function summary(desc: DescMessage, m: Message): unknown {
  try {
    return JSON.parse(
      JSON.stringify(toJson(desc, m), (_k, v) =>
        typeof v === "string" && v.length > 40 ? `${v.slice(0, 40)}…(${v.length})` : v,
      ),
    );
  } catch {
    return desc.typeName;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
