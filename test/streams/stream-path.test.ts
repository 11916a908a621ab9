/**
 * The HTTP/2 server-stream path (src/transport/drivers/server-stream.ts) at its edges, over the wire:
 * deadlines, undecodable requests, errors after headers, response headers set by interceptors, and a
 * client that leaves mid-stream, in gRPC, gRPC-web and Connect.
 */
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  StreamUsersRequestSchema,
  StreamUsersResponseSchema,
  WatchUsersRequestSchema,
  WatchUsersResponseSchema,
} from "../../gen/user/v1/user_service_pb.js";
import { decodeResumeToken } from "../../src/users/watch/resume-token.ts";
import { createPlainUser } from "../helpers/accounts.ts";
import { clients, reasonOf, type TransportName } from "../helpers/clients.ts";
import { grpcFrame, grpcStatusOf, grpcTrailersOf, http2Post } from "../helpers/raw.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { loginToken, until, usersAs } from "./support.ts";

let server: TestServer;
let token: string;

beforeAll(async () => {
  server = await startTestServer();
  token = await loginToken(server.url);
  await Promise.all([1, 2, 3, 4, 5].map((i) => createPlainUser(server.url, token, `path${i}`)));
});
afterAll(() => server?.close());

const transports: TransportName[] = ["grpc", "grpc-web-h2", "connect-h2"];

describe.each(transports)("over %s", (transport) => {
  it("a deadline ends a quiet watch with DEADLINE_EXCEEDED", async () => {
    const users = usersAs(server, token, transport);
    const started = performance.now();
    const err = await (async () => {
      for await (const _ of users.watchUsers({}, { timeoutMs: 300 })) {
        // nothing happens on this database while we wait
      }
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.DeadlineExceeded);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("streams every user and ends with OK", async () => {
    let n = 0;
    for await (const res of usersAs(server, token, transport).streamUsers({})) n += res.users.length;
    expect(n).toBe(6); // the admin and five users
  });

  it("an error from the handler carries its ErrorInfo reason", async () => {
    const err = await (async () => {
      for await (const _ of usersAs(server, token, transport).streamUsers({ filter: "nope = 1" })) {
        // no message comes before the error
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    expect(reasonOf(err)).toBe("INVALID_FILTER");
  });
});

describe("gRPC on the wire", () => {
  const path = "/user.v1.UserService/StreamUsers";
  const auth = () => ({ authorization: `Bearer ${token}`, te: "trailers" });

  it("an undecodable request is INVALID_ARGUMENT with an ErrorInfo, trailers-only", async () => {
    const answer = await http2Post(
      server.url,
      path,
      { ...auth(), "content-type": "application/grpc" },
      grpcFrame(Buffer.from([0xff, 0xff, 0xff])),
    );
    expect(answer.headers[":status"]).toBe(200);
    expect(answer.body.byteLength).toBe(0);
    expect(grpcStatusOf(answer).status).toBe(Code.InvalidArgument);
    const details = grpcTrailersOf(answer)["grpc-status-details-bin"];
    const status = fromBinary(StatusSchema, Buffer.from(details, "base64"));
    const info = status.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"));
    expect(info && fromBinary(ErrorInfoSchema, info.value).reason).toBe("INVALID_ARGUMENT");
  });

  it("sends headers (with the interceptors' x-request-id), messages, then grpc-status 0 in trailers", async () => {
    const answer = await http2Post(
      server.url,
      path,
      { ...auth(), "content-type": "application/grpc" },
      grpcFrame(toBinary(StreamUsersRequestSchema, create(StreamUsersRequestSchema, {}))),
    );
    expect(answer.headers["content-type"]).toBe("application/grpc");
    expect(answer.headers["x-request-id"]).toBeTruthy();
    expect(answer.trailers["grpc-status"]).toBe("0");
    const len = answer.body.readUInt32BE(1);
    expect(fromBinary(StreamUsersResponseSchema, answer.body.subarray(5, 5 + len)).users.length).toBe(6);
  });

  it("a client that leaves mid-watch frees the stream on the server", async () => {
    const gauge = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^rpc_server_open_streams\{[^}]*method="WatchUsers"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const controller = new AbortController();
    const users = usersAs(server, token, "grpc");
    const watching = (async () => {
      for await (const _ of users.watchUsers(create(WatchUsersRequestSchema, {}), { signal: controller.signal })) {
        // heartbeats only
      }
    })().catch(() => {});
    await until(async () => (await gauge()) === 1, "the watch to be open");
    controller.abort();
    await watching;
    await until(async () => (await gauge()) === 0, "the server to close the watch");
  });
});

describe("a watcher that stops reading", () => {
  it("is ended with UNAVAILABLE once WATCH_MAX_BACKLOG changes wait for it; what it got is in order", async () => {
    const small = await startTestServer({ WATCH_MAX_BACKLOG: "20" });
    try {
      const admin = await loginToken(small.url);
      // A client that reads nothing: a 1 KB window stops the server from sending after a few messages.
      const session = http2.connect(small.url, { settings: { initialWindowSize: 1024 } });
      const req = session.request({
        ":method": "POST",
        ":path": "/user.v1.UserService/WatchUsers",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${admin}`,
      });
      req.end(grpcFrame(toBinary(WatchUsersRequestSchema, create(WatchUsersRequestSchema, {}))));
      req.pause();
      const chunks: Buffer[] = [];
      let trailers: http2.IncomingHttpHeaders = {};
      req.on("trailers", (t) => (trailers = t));
      const ended = new Promise<void>((done) => req.on("close", () => done()));
      // Far more changes than the stream buffers (~16 KB) plus the backlog (20): ~2.6 KB each.
      const target = await createPlainUser(small.url, admin, "stuck");
      const users = clients(small.url, "grpc", () => admin).users;
      const big = (round: number) =>
        Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, `${round}-`.padEnd(256, "x")]));
      for (let round = 0; round < 60; round++) {
        await users.updateUser({ user: { id: target.id, labels: big(round) }, updateMask: { paths: ["labels"] } });
      }
      req.on("data", (c: Buffer) => chunks.push(c));
      req.resume();
      await ended;
      session.close();
      expect(trailers["grpc-status"]).toBe(String(Code.Unavailable));
      expect(decodeURIComponent(String(trailers["grpc-message"]))).toContain("fell behind");
      const body = Buffer.concat(chunks);
      const seqs: number[] = [];
      for (let at = 0; at + 5 <= body.length; ) {
        const len = body.readUInt32BE(at + 1);
        const event = fromBinary(WatchUsersResponseSchema, body.subarray(at + 5, at + 5 + len));
        seqs.push(decodeResumeToken(event.resumeToken));
        at += 5 + len;
      }
      expect(seqs.length).toBeGreaterThan(0);
      expect(seqs.length).toBeLessThan(60);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
    } finally {
      await small.close();
    }
  });
});
