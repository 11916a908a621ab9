/**
 * WatchUsers events carry the change's actor and its event_id (docs/adr/0022): the same values
 * ListUserChanges gives for that change; an API key's change, a self change and an admin's change, over gRPC
 * and Connect; markers (INITIAL, SYNCED) carry neither. And retention: a change past CHANGE_LOG_RETENTION
 * but within AUDIT_RETENTION is still listed by ListUserChanges while its resume token is
 * RESUME_TOKEN_EXPIRED; past AUDIT_RETENTION it is gone (the running service's pruner does both).
 */
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActorKind } from "../../gen/user/v1/actor_pb.js";
import { WatchEventType as T } from "../../gen/user/v1/user_service_pb.js";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { until, watch } from "./support.ts";

let server: TestServer;
let admin: string;
let adminId: string;

beforeAll(async () => {
  server = await startTestServer({ PRUNE_INTERVAL: "200ms" });
  admin = await adminToken(server.url);
  [{ id: adminId }] = await query<{ id: string }>(server.databaseUrl, "select id from users where role = 'admin'");
});
afterAll(() => server?.close());

const users = (token: string, headers: Record<string, string> = {}) =>
  clients(server.url, "grpc", () => token, headers).users;

describe("WatchUsers' actor and event_id", () => {
  for (const transport of ["grpc", "connect-h1"] as const) {
    it(`match ListUserChanges for admin, self and API-key changes (${transport})`, async () => {
      const suite = `actor-${randomUUID().slice(0, 8)}`;
      const m = await createMember(server.url, admin, { prefix: "watched", labels: { suite } });
      const w = await watch(server, admin, transport, {
        filter: `labels.suite = "${suite}"`,
        sendInitial: true,
      }).synced();
      for (const e of w.events) {
        expect(e.eventId).toBe("");
        expect(e.actor).toBeUndefined();
      }
      const key = await users(admin).createApiKey({ userId: adminId, displayName: "watch actor" });
      await users(admin, { "x-request-id": "w-admin" }).updateUser({
        user: { id: m.user.id, displayName: "By admin" },
        updateMask: { paths: ["display_name"] },
      });
      await users(m.token, { "x-request-id": "w-self" }).updateUser({
        user: { id: m.user.id, displayName: "By self" },
        updateMask: { paths: ["display_name"] },
      });
      await users(key.secret, { "x-request-id": "w-key" }).deleteUser({ userId: m.user.id });
      await users(admin).undeleteUser({ userId: m.user.id });
      const live = await w.liveCount(4);
      await w.stop();
      expect(live.map((e) => e.type)).toEqual([T.UPDATED, T.UPDATED, T.DELETED, T.UNDELETED]);
      expect(live.map((e) => [e.actor?.kind, e.actor?.userId, e.actor?.apiKeyId, e.actor?.requestId])).toEqual([
        [ActorKind.USER, adminId, "", "w-admin"],
        [ActorKind.USER, m.user.id, "", "w-self"],
        [ActorKind.API_KEY, adminId, key.apiKey?.id, "w-key"],
        [ActorKind.USER, adminId, "", expect.any(String)],
      ]);
      const history = (await users(admin).listUserChanges({ userId: m.user.id, pageSize: 4 })).changes.reverse();
      expect(live.map((e) => e.eventId)).toEqual(history.map((c) => c.eventId));
      expect(live.map((e) => e.resumeToken)).toEqual(history.map((c) => c.resumeToken));
      expect(live.map((e) => e.actor)).toEqual(history.map((c) => c.actor));
    });
  }
});

describe("retention", () => {
  it("keeps a change past CHANGE_LOG_RETENTION in the history while its resume token is RESUME_TOKEN_EXPIRED", async () => {
    const m = await createMember(server.url, admin, { prefix: "aged" });
    await users(admin).updateUser({
      user: { id: m.user.id, displayName: "Aged" },
      updateMask: { paths: ["display_name"] },
    });
    const [renamed, created] = (await users(admin).listUserChanges({ userId: m.user.id })).changes;
    // Both changes are made 8 days old (CHANGE_LOG_RETENTION is 7d, AUDIT_RETENTION 90d); a fresh one follows.
    await query(
      server.databaseUrl,
      "update user_changes set change_time = change_time - interval '8 days' where id = any($1::bigint[])",
      [[renamed.eventId, created.eventId]],
    );
    await users(admin).updateUser({
      user: { id: m.user.id, displayName: "Fresh" },
      updateMask: { paths: ["display_name"] },
    });
    // The service's pruner moves the watch horizon past them and drops what history does not need.
    await until(
      async () =>
        (
          await query<{ n: number }>(
            server.databaseUrl,
            "select count(*)::int as n from user_changes where id = $1 and previous is null",
            [renamed.eventId],
          )
        )[0].n === 1,
      "the pruner to trim the aged change",
    );
    const listed = (await users(admin).listUserChanges({ userId: m.user.id })).changes;
    expect(listed.map((c) => c.eventId).slice(1)).toEqual([renamed.eventId, created.eventId]);
    expect(listed[1].changedFields).toEqual(["display_name"]);
    expect(listed[1].user?.displayName).toBe("Aged");
    expect(listed[1].actor).toEqual(renamed.actor);
    // The creation's token is behind the horizon; the rename's is at its edge (nothing after it was lost).
    const end = await watch(server, admin, "grpc", { resumeToken: created.resumeToken }).ends();
    expect({ code: end?.code, reason: end?.reason }).toEqual({ code: Code.OutOfRange, reason: "RESUME_TOKEN_EXPIRED" });
    const edge = watch(server, admin, "grpc", { resumeToken: renamed.resumeToken, filter: `email = "${m.email}"` });
    const [next] = await edge.liveCount(1);
    expect(next.eventId).toBe(listed[0].eventId);
    await edge.stop();

    // Past AUDIT_RETENTION the change is deleted: history no longer lists it.
    await query(server.databaseUrl, "update user_changes set change_time = now() - interval '91 days' where id = $1", [
      created.eventId,
    ]);
    await until(
      async () =>
        (await query(server.databaseUrl, "select 1 from user_changes where id = $1", [created.eventId])).length === 0,
      "the pruner to delete the change past AUDIT_RETENTION",
    );
    const after = (await users(admin).listUserChanges({ userId: m.user.id })).changes;
    expect(after.map((c) => c.eventId)).toEqual([listed[0].eventId, renamed.eventId]);
  });
});
