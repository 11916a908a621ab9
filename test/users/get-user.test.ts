/**
 * GetUser and BatchGetUsers over @grpc/grpc-js: who may read whom (admin anyone, self only itself, the
 * unknown-target case answered PERMISSION_DENIED to non-admins so ids cannot be probed), soft-deleted users
 * visible to admins, request order and NOT_FOUND for batches, and the field paths of invalid ids.
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/user/v1/user_pb.js";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember, createPlainUser, type Member } from "../helpers/accounts.ts";
import { failure } from "../helpers/clients.ts";
import { type GrpcJs, grpcJs } from "../helpers/grpc-js.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const { getUser, batchGetUsers, deleteUser } = UserService.method;

let server: TestServer;
let grpc: GrpcJs;
let admin: string;
let alice: Member;
let bob: Member;
let deleted: User;
let plain: User[];

beforeAll(async () => {
  server = await startTestServer();
  grpc = grpcJs(server.port);
  admin = await adminToken(server.url);
  [alice, bob] = await Promise.all([
    createMember(server.url, admin, { prefix: "alice" }),
    createMember(server.url, admin, { prefix: "bob" }),
  ]);
  plain = await Promise.all([1, 2, 3].map((i) => createPlainUser(server.url, admin, `plain${i}`)));
  deleted = await createPlainUser(server.url, admin, "deleted");
  await grpc.call(deleteUser, { userId: deleted.id }, admin);
});
afterAll(async () => {
  grpc?.close();
  await server?.close();
});

describe("GetUser", () => {
  it("lets an admin read any user", async () => {
    const res = await grpc.call(getUser, { userId: alice.user.id }, admin);
    expect(res.user).toEqual(alice.user);
  });

  it("lets a user read itself", async () => {
    const res = await grpc.call(getUser, { userId: alice.user.id }, alice.token);
    expect(res.user?.email).toBe(alice.email);
    expect(res.user?.id).toBe(alice.user.id);
  });

  it("denies a user reading another user: PERMISSION_DENIED", async () => {
    const f = await failure(grpc.call(getUser, { userId: bob.user.id }, alice.token));
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
  });

  it("answers a user asking for an unknown id with PERMISSION_DENIED (not NOT_FOUND)", async () => {
    const f = await failure(grpc.call(getUser, { userId: randomUUID() }, alice.token));
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
  });

  it("answers an admin asking for an unknown id with NOT_FOUND USER_NOT_FOUND", async () => {
    const f = await failure(grpc.call(getUser, { userId: randomUUID() }, admin));
    expect([f.code, f.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
  });

  it("returns a soft-deleted user to an admin, with state DELETED and delete_time", async () => {
    const res = await grpc.call(getUser, { userId: deleted.id }, admin);
    expect(res.user?.state).toBe(UserState.DELETED);
    expect(res.user?.deleteTime).toBeDefined();
  });

  it.each([
    ["not a UUID", "nope"],
    ["empty", ""],
  ])("rejects a user_id that is %s: INVALID_ARGUMENT on user_id", async (_what, userId) => {
    const f = await failure(grpc.call(getUser, { userId }, admin));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual(["user_id"]);
  });

  it("needs a token: UNAUTHENTICATED", async () => {
    const f = await failure(grpc.call(getUser, { userId: alice.user.id }));
    expect([f.code, f.reason]).toEqual([Code.Unauthenticated, "UNAUTHENTICATED"]);
  });
});

describe("BatchGetUsers", () => {
  it("returns users in request order, duplicates included", async () => {
    const ids = [plain[2].id, alice.user.id, plain[0].id, plain[2].id, bob.user.id];
    const res = await grpc.call(batchGetUsers, { userIds: ids }, admin);
    expect(res.users.map((u) => u.id)).toEqual(ids);
    expect(res.users[1]).toEqual(alice.user);
  });

  it("includes soft-deleted users, with state DELETED", async () => {
    const res = await grpc.call(batchGetUsers, { userIds: [deleted.id] }, admin);
    expect(res.users[0].state).toBe(UserState.DELETED);
  });

  it("fails the whole call when any id is unknown: NOT_FOUND USER_NOT_FOUND", async () => {
    const unknown = randomUUID();
    const f = await failure(grpc.call(batchGetUsers, { userIds: [alice.user.id, unknown] }, admin));
    expect([f.code, f.reason]).toEqual([Code.NotFound, "USER_NOT_FOUND"]);
  });

  it("rejects an empty list: INVALID_ARGUMENT on user_ids", async () => {
    const f = await failure(grpc.call(batchGetUsers, { userIds: [] }, admin));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual(["user_ids"]);
  });

  it("rejects more than 1000 ids and accepts exactly 1000 (known) ones", async () => {
    const tooMany = Array.from({ length: 1001 }, () => alice.user.id);
    const f = await failure(grpc.call(batchGetUsers, { userIds: tooMany }, admin));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toContain("user_ids");
    const res = await grpc.call(batchGetUsers, { userIds: tooMany.slice(1) }, admin);
    expect(res.users).toHaveLength(1000);
  });

  it("names each invalid id by index: user_ids[1]", async () => {
    const f = await failure(grpc.call(batchGetUsers, { userIds: [alice.user.id, "bad"] }, admin));
    expect([f.code, f.reason]).toEqual([Code.InvalidArgument, "INVALID_ARGUMENT"]);
    expect(f.violations).toEqual(["user_ids[1]"]);
  });

  it("is admin only: even a batch of just oneself is PERMISSION_DENIED for a regular user", async () => {
    const f = await failure(grpc.call(batchGetUsers, { userIds: [alice.user.id] }, alice.token));
    expect([f.code, f.reason]).toEqual([Code.PermissionDenied, "PERMISSION_DENIED"]);
  });
});
