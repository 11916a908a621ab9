/**
 * Lean @grpc/grpc-js calls for the throughput benchmarks, so the client is never what limits them:
 * StreamUsers with a deserializer that only counts the users in each message (it walks the top-level
 * fields of StreamUsersResponse without decoding a User), and ImportUsers fed with messages encoded
 * before the clock starts.
 */
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type ImportUsersResponse, ImportUsersResponseSchema } from "../../gen/user/v1/user_service_pb.js";

const SERVICE = "/user.v1.UserService";

/** A grpc-js client for `origin` (http://host:port) with the caller's bearer token. */
export function rawClient(origin: string, token: string): { client: grpc.Client; metadata: () => grpc.Metadata } {
  const client = new grpc.Client(new URL(origin).host, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
  });
  return {
    client,
    metadata: () => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${token}`);
      return md;
    },
  };
}

function varint(buf: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 1;
  for (;;) {
    const b = buf[at++];
    value += (b & 0x7f) * shift;
    if (b < 0x80) return [value, at];
    shift *= 128;
  }
}

/** The number of `users` (field 1, length-delimited) in an encoded StreamUsersResponse. */
export function countUsers(buf: Buffer): number {
  let n = 0;
  for (let at = 0; at < buf.length; ) {
    const [tag, next] = varint(buf, at);
    const wire = tag & 7;
    if (wire === 2) {
      const [length, body] = varint(buf, next);
      if (tag >>> 3 === 1) n++;
      at = body + length;
    } else if (wire === 0) at = varint(buf, next)[1];
    else if (wire === 1) at = next + 8;
    else if (wire === 5) at = next + 4;
    else throw new Error(`unexpected wire type ${wire} in StreamUsersResponse`);
  }
  return n;
}

/** Streams every user (empty request: no filter, live users); resolves with the count and messages. */
export function streamAllUsers(origin: string, token: string): Promise<{ users: number; messages: number }> {
  const { client, metadata } = rawClient(origin, token);
  return new Promise((resolve, reject) => {
    let users = 0;
    let messages = 0;
    const call = client.makeServerStreamRequest<Buffer, number>(
      `${SERVICE}/StreamUsers`,
      (b) => b,
      countUsers,
      Buffer.alloc(0),
      metadata(),
      {},
    );
    call.on("data", (n: number) => {
      users += n;
      messages++;
    });
    call.on("error", (err) => {
      client.close();
      reject(err);
    });
    call.on("status", (s: grpc.StatusObject) => {
      client.close();
      if (s.code === grpc.status.OK) resolve({ users, messages });
      else reject(new Error(`StreamUsers ended with ${grpc.status[s.code]}: ${s.details}`));
    });
  });
}

/** Sends pre-encoded ImportUsersRequest messages, honouring backpressure; resolves with the response. */
export function importUsers(origin: string, token: string, requests: readonly Buffer[]): Promise<ImportUsersResponse> {
  const { client, metadata } = rawClient(origin, token);
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest<Buffer, ImportUsersResponse>(
      `${SERVICE}/ImportUsers`,
      (b) => b,
      (b) => fromBinary(ImportUsersResponseSchema, b),
      metadata(),
      {},
      (err, res) => {
        client.close();
        if (err || !res) reject(err ?? new Error("ImportUsers: no response"));
        else resolve(res);
      },
    );
    let i = 0;
    const pump = () => {
      while (i < requests.length) {
        if (!call.write(requests[i++])) {
          call.once("drain", pump);
          return;
        }
      }
      call.end();
    };
    pump();
  });
}
