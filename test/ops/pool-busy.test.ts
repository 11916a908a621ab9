/**
 * Every database connection busy: a write that cannot get one within the checkout timeout (5 s) answers
 * UNAVAILABLE with the contract's reason, says the service is busy rather than that the database is down,
 * and changes nothing; the write holding the connection completes once it can.
 */
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let token = "";

beforeAll(async () => {
  server = await startTestServer({ DB_POOL_MAX: "1" });
  token = await adminToken(server.url);
});
afterAll(async () => {
  await server?.close();
});

it("answers UNAVAILABLE (busy, not down) when no connection comes free, and changes nothing", async () => {
  const { users } = clients(server.url, "grpc", () => token);
  const [held, other] = await Promise.all([
    createPlainUser(server.url, token, "pool-held"),
    createPlainUser(server.url, token, "pool-other"),
  ]);
  // Another session locks the first user's row: the write to it takes the only connection and waits.
  const locker = new pg.Client({ connectionString: server.databaseUrl });
  await locker.connect();
  try {
    await locker.query("begin");
    await locker.query("select 1 from users where id = $1 for update", [held.id]);
    const blocked = users.updateUser({
      user: { id: held.id, displayName: "waited for the lock" },
      updateMask: { paths: ["display_name"] },
    });
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    const refused = await failure(
      users.updateUser({
        user: { id: other.id, displayName: "never written" },
        updateMask: { paths: ["display_name"] },
      }),
    );
    expect(performance.now() - started).toBeLessThan(8000);
    expect([refused.code, refused.reason]).toEqual([Code.Unavailable, "UNAVAILABLE"]);
    expect(refused.message).toMatch(/no database connection came free/);
    expect(refused.message).not.toMatch(/timeout exceeded/);

    await locker.query("commit");
    expect((await blocked).user?.displayName).toBe("waited for the lock");
  } finally {
    await locker.end();
  }
  const [row] = await query<{ display_name: string; version: number }>(
    server.databaseUrl,
    "select display_name, version from users where id = $1",
    [other.id],
  );
  expect(row).toEqual({ display_name: other.displayName, version: 1 });
}, 30_000);
