/**
 * The baseline the service is measured against: the minimal server a team would write by hand for
 * `user.v1.UserService/GetUser` alone. @grpc/grpc-js, protobuf-es (de)serialization with the generated
 * schemas, `jsonwebtoken` verifying the service's HS256 access tokens (pinned algorithm, issuer, audience,
 * expiry), a `pg` pool and one prepared primary-key query. No ORM, no interceptors, no other protocol.
 *
 * Usage: `node bench/baseline-server.ts [--port N] [--database-url URL]`; otherwise PORT (default 50051) and
 * DATABASE_URL from the environment, with JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE (both default
 * "user-service") and DB_POOL_MAX (default 10, like the service). Prints `listening on <port>`.
 */
import { createSecretKey } from "node:crypto";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import jwt from "jsonwebtoken";
import pg from "pg";
import { Role, type User, UserSchema, UserState } from "../gen/user/v1/user_pb.js";
import {
  type GetUserRequest,
  GetUserRequestSchema,
  type GetUserResponse,
  GetUserResponseSchema,
} from "../gen/user/v1/user_service_pb.js";

const { values: args } = parseArgs({ options: { port: { type: "string" }, "database-url": { type: "string" } } });
const port = Number(args.port ?? process.env.PORT ?? 50051);
const databaseUrl = args["database-url"] ?? process.env.DATABASE_URL;
if (!databaseUrl || !process.env.JWT_SECRET) {
  process.stderr.write("baseline-server: DATABASE_URL (or --database-url) and JWT_SECRET are required\n");
  process.exit(2);
}
// A KeyObject, not the string: given a string, jsonwebtoken first tries (and fails) to parse it as a public
// key on every verify, which cost the baseline ~16 % of its CPU.
const secret = createSecretKey(Buffer.from(process.env.JWT_SECRET));
const verifyOptions: jwt.VerifyOptions & { complete?: false } = {
  algorithms: ["HS256"],
  issuer: process.env.JWT_ISSUER || "user-service",
  audience: process.env.JWT_AUDIENCE || "user-service",
};

const pool = new pg.Pool({ connectionString: databaseUrl, max: Number(process.env.DB_POOL_MAX || 10) });
const selectUser = {
  name: "baseline-get-user",
  text: `select id, email, display_name, role, state, labels, version, create_time, update_time, delete_time
         from users where id = $1`,
};

interface UserRow {
  id: string;
  email: string;
  display_name: string;
  role: string;
  state: "active" | "suspended" | "deleted";
  labels: Record<string, string>;
  version: number;
  create_time: Date;
  update_time: Date;
  delete_time: Date | null;
}

const states = { active: UserState.ACTIVE, suspended: UserState.SUSPENDED, deleted: UserState.DELETED };
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function toUser(row: UserRow): User {
  return create(UserSchema, {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    role: row.role === "admin" ? Role.ADMIN : Role.USER,
    state: states[row.state],
    labels: row.labels,
    createTime: timestampFromDate(row.create_time),
    updateTime: timestampFromDate(row.update_time),
    deleteTime: row.delete_time ? timestampFromDate(row.delete_time) : undefined,
    etag: `W/"${row.version}"`,
  });
}

/** The caller of a call, or undefined when its bearer token is missing or not valid. */
function callerOf(metadata: grpc.Metadata): { sub: string; admin: boolean } | undefined {
  const header = metadata.get("authorization")[0];
  const token = typeof header === "string" && header.startsWith("Bearer ") ? header.slice(7) : undefined;
  if (!token) return undefined;
  try {
    const claims = jwt.verify(token, secret, verifyOptions);
    if (typeof claims === "string" || typeof claims.sub !== "string") return undefined;
    return { sub: claims.sub, admin: claims.role === "ROLE_ADMIN" };
  } catch {
    return undefined;
  }
}

const fail = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });

async function getUser(
  call: grpc.ServerUnaryCall<GetUserRequest, GetUserResponse>,
  done: grpc.sendUnaryData<GetUserResponse>,
) {
  const caller = callerOf(call.metadata);
  if (!caller) return done(fail(grpc.status.UNAUTHENTICATED, "invalid or expired access token"));
  const id = call.request.userId;
  if (!uuid.test(id)) return done(fail(grpc.status.INVALID_ARGUMENT, "user_id must be a UUID"));
  if (!caller.admin && caller.sub !== id)
    return done(fail(grpc.status.PERMISSION_DENIED, "you may only access your own user"));
  let row: UserRow | undefined;
  try {
    row = (await pool.query<UserRow>({ ...selectUser, values: [id] })).rows[0];
  } catch {
    return done(fail(grpc.status.UNAVAILABLE, "database unavailable"));
  }
  if (!row || (!caller.admin && row.state === "deleted")) {
    return done(fail(caller.admin ? grpc.status.NOT_FOUND : grpc.status.PERMISSION_DENIED, `user ${id} not found`));
  }
  done(null, create(GetUserResponseSchema, { user: toUser(row) }));
}

const server = new grpc.Server();
server.addService(
  {
    getUser: {
      path: "/user.v1.UserService/GetUser",
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: GetUserRequest) => Buffer.from(toBinary(GetUserRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(GetUserRequestSchema, b),
      responseSerialize: (m: GetUserResponse) => Buffer.from(toBinary(GetUserResponseSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(GetUserResponseSchema, b),
    },
  },
  { getUser },
);
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`baseline-server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on ${bound}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    server.forceShutdown();
    void pool.end().finally(() => process.exit(0));
  });
}
