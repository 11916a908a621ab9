/**
 * A watcher that leaves in the middle of its `send_initial` snapshot: the snapshot reads in one REPEATABLE
 * READ transaction on a pooled connection, which must not go back to the pool still inside it (the next
 * query there would read the frozen snapshot). One query connection makes the reuse certain.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WatchEventType } from "../../gen/user/v1/user_service_pb.js";
import { createTestDatabase, query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { loginToken, sleep, until, usersAs, watch } from "./support.ts";

let server: TestServer;
let token = "";
beforeAll(async () => {
  server = await startTestServer({ DATABASE_URL: await createTestDatabase(), DB_POOL_MAX: "1" });
  token = await loginToken(server.url);
});
afterAll(() => server?.close());

describe("a watcher that leaves mid-snapshot", () => {
  it("leaves no connection inside the snapshot's transaction: later reads see later writes", async () => {
    const suite = `leave-${randomUUID().slice(0, 8)}`;
    // More users than one snapshot batch (500), so the watcher leaves while the snapshot is still open.
    await query(
      server.databaseUrl,
      `insert into users (id, email, display_name, role, state, labels, version, create_time, update_time)
       select gen_random_uuid(), $1 || '-' || i || '@example.com', 'Before', 'user', 'active',
              jsonb_build_object('suite', $1::text), 1, now(), now()
       from generate_series(1, 1200) as i`,
      [suite],
    );
    const w = watch(server, token, "grpc", { sendInitial: true, filter: `labels.suite = "${suite}"` });
    await until(() => w.events.some((e) => e.type === WatchEventType.INITIAL), "the first INITIAL event", 10_000);
    await w.stop();
    await sleep(200);

    const users = usersAs(server, token, "grpc");
    const listed = await users.listUsers({ filter: `labels.suite = "${suite}"`, pageSize: 1, orderBy: "email" });
    const target = listed.users[0];
    await users.updateUser({ user: { id: target.id, displayName: "After" }, updateMask: { paths: ["display_name"] } });
    // Both reads go through the one query connection the snapshot used.
    const again = await users.listUsers({ filter: `labels.suite = "${suite}"`, pageSize: 1, orderBy: "email" });
    expect(again.users[0].displayName).toBe("After");
    expect(listed.totalSize).toBe(1200);
  });
});
