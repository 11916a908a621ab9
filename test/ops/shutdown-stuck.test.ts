/**
 * Shutdown with a write stuck in the database: another session holds the row's lock, so the write's query
 * and its connection stay busy past the grace period. The caller gets UNAVAILABLE, shutdown still completes
 * (the query pool's release, where user writes run since ADR 0015, is given 10 s, then skipped with a
 * warning naming it), and the write, which was never acknowledged, commits once the lock is released.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { expect, it } from "vitest";
import { adminToken, createPlainUser } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { startTestServer } from "../helpers/server.ts";

it("completes, naming the step that did not finish, when a write is stuck on a lock", async () => {
  const server = await startTestServer({ SHUTDOWN_GRACE: "1s" });
  const token = await adminToken(server.url);
  const user = await createPlainUser(server.url, token, "stuck");
  const locker = new pg.Client({ connectionString: server.databaseUrl });
  await locker.connect();
  try {
    await locker.query("begin");
    await locker.query("select 1 from users where id = $1 for update", [user.id]);
    // One call over HTTP/2 (gRPC), one over HTTP/1.1 (Connect): both wait on the lock.
    const stuck = (["grpc", "connect-h1"] as const).map((transport) =>
      clients(server.url, transport, () => token)
        .users.updateUser({
          user: { id: user.id, displayName: "written after the lock" },
          updateMask: { paths: ["display_name"] },
        })
        .then(
          () => "answered OK",
          (e: unknown) => Code[ConnectError.from(e).code],
        ),
    );
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    await server.close();
    const took = performance.now() - started;
    expect(took).toBeGreaterThan(10_000);
    expect(took).toBeLessThan(20_000);
    // Past the grace period the call is answered UNAVAILABLE (retry elsewhere), not reset with the connection.
    expect(await Promise.all(stuck)).toEqual(["Unavailable", "Unavailable"]);
    expect(server.logs).toContainEqual(
      expect.objectContaining({ step: "query pool", msg: expect.stringMatching(/did not finish/) }),
    );
    await locker.query("commit");
  } finally {
    await locker.end();
  }
  // Not acknowledged, yet committed once the lock was released: the caller was told to retry, and the
  // write is idempotent, as UNAVAILABLE asks of a retried call.
  for (let waited = 0; waited < 5000; waited += 50) {
    const [row] = await query<{ display_name: string }>(
      server.databaseUrl,
      "select display_name from users where id = $1",
      [user.id],
    );
    if (row.display_name === "written after the lock") return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the stuck write never committed after the lock was released");
}, 40_000);
