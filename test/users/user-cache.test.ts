/**
 * GetUser and the auth check are served from each process's in-memory user cache (src/users/user-cache.ts),
 * kept exact by the change log. Two real server processes on one database: a write through one is seen by a
 * read through the other within 100 ms; a read after a write through the same process always sees the
 * write; a suspension through one process stops the user's token on the other; and after the cache's feed
 * connection is killed, what was written meanwhile is still seen.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Role, UserState } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember, createPlainUser } from "../helpers/accounts.ts";
import { type Clients, clients } from "../helpers/clients.ts";
import { createTestDatabase, query } from "../helpers/database.ts";
import { killProcesses, type ServiceProcess, startProcess } from "../helpers/process.ts";
import { startTestServer } from "../helpers/server.ts";

let a: ServiceProcess;
let b: ServiceProcess;
let databaseUrl: string;
let token: string;
let onA: Clients;
let onB: Clients;

beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  // One after the other: the first creates the admin, the second finds it.
  a = await startProcess({ DATABASE_URL: databaseUrl, LOG_LEVEL: "info" });
  b = await startProcess({ DATABASE_URL: databaseUrl, LOG_LEVEL: "info" });
  token = await adminToken(a.url);
  onA = clients(a.url, "grpc", () => token);
  onB = clients(b.url, "connect-h2", () => token);
}, 60_000);
afterAll(killProcesses);

/** Polls GetUser on `on` until `done` holds; resolves with the milliseconds it took. */
async function until(on: Clients, id: string, done: (etag: string, state: UserState) => boolean): Promise<number> {
  const start = performance.now();
  for (;;) {
    const u = (await on.users.getUser({ userId: id })).user;
    if (u && done(u.etag, u.state)) return performance.now() - start;
    if (performance.now() - start > 5000) throw new Error("the change was not seen within 5 s");
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe("two processes on one database", () => {
  it("a write through one is read through the other within 100 ms", async () => {
    const user = await createPlainUser(a.url, token, "cross");
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      // Read on A first, so A holds the user in memory.
      const before = (await onA.users.getUser({ userId: user.id })).user;
      const after = (
        await onB.users.updateUser({
          user: { id: user.id, displayName: `renamed on B ${i}` },
          updateMask: { paths: ["display_name"] },
        })
      ).user;
      expect(after?.etag).not.toBe(before?.etag);
      delays.push(await until(onA, user.id, (etag) => etag === after?.etag));
    }
    expect(Math.max(...delays)).toBeLessThan(100);
    // And deletion, the other way round.
    await onA.users.getUser({ userId: user.id });
    await onB.users.getUser({ userId: user.id });
    await onA.users.deleteUser({ userId: user.id });
    expect(await until(onB, user.id, (_, state) => state === UserState.DELETED)).toBeLessThan(100);
  });

  it("a read after a write through the same process always sees the write", async () => {
    const user = await createPlainUser(a.url, token, "own-writes");
    // A reader keeps the user hot in A's memory while the writes happen.
    let reading = true;
    const reader = (async () => {
      while (reading) await onA.users.getUser({ userId: user.id });
    })();
    try {
      for (let i = 0; i < 50; i++) {
        const written = (
          await onA.users.updateUser({
            user: { id: user.id, labels: { round: String(i) } },
            updateMask: { paths: ["labels"] },
          })
        ).user;
        const read = (await onA.users.getUser({ userId: user.id })).user;
        expect([read?.etag, read?.labels]).toEqual([written?.etag, { round: String(i) }]);
      }
    } finally {
      reading = false;
      await reader;
    }
  });

  it("a suspension through one process stops the user's token on the other", async () => {
    const member = await createMember(a.url, token, { prefix: "suspended" });
    const self = clients(b.url, "grpc", () => member.token);
    expect((await self.users.getUser({ userId: member.user.id })).user?.id).toBe(member.user.id);
    await onA.users.updateUser({
      user: { id: member.user.id, state: UserState.SUSPENDED },
      updateMask: { paths: ["state"] },
    });
    const start = performance.now();
    for (;;) {
      const err = await self.users.getUser({ userId: member.user.id }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      if (err) {
        expect(err.code).toBe(Code.Unauthenticated);
        break;
      }
      expect(performance.now() - start).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 2));
    }
  });

  it("a process that starts later serves the users it loaded at start exactly as they were written", async () => {
    const made = await Promise.all([1, 2, 3].map((i) => createPlainUser(a.url, token, `warm${i}`)));
    const member = await createMember(a.url, token, { prefix: "warm", labels: { team: "blue" } });
    const c = await startProcess({ DATABASE_URL: databaseUrl, LOG_LEVEL: "info" });
    const onC = clients(c.url, "grpc-web-h2", () => token);
    for (const u of [...made, member.user]) expect((await onC.users.getUser({ userId: u.id })).user).toEqual(u);
    c.child.kill("SIGTERM");
    await c.exited;
  });

  it("keeps every field exactly, through warm-up and through change events", async () => {
    // Unicode in the packed strings, several labels, an admin, a suspended user and a deleted one.
    const odd = await createMember(a.url, token, {
      prefix: "fields",
      displayName: 'Zoë 李 🚀 O\'Brien \\ "quoted"',
      labels: { team: "blue", "cost-center": "ünïcode ✓", empty: "" },
    });
    const admin = (
      await onA.users.updateUser({
        user: { id: odd.user.id, role: Role.ADMIN },
        updateMask: { paths: ["role"] },
      })
    ).user;
    const suspended = (
      await onA.users.updateUser({
        user: { id: (await createPlainUser(a.url, token, "fields-s")).id, state: UserState.SUSPENDED },
        updateMask: { paths: ["state"] },
      })
    ).user;
    const deleted = await createPlainUser(a.url, token, "fields-d");
    await onA.users.deleteUser({ userId: deleted.id });
    const readOn = (on: Clients, id: string) =>
      on.users.getUser({ userId: id }).then(
        (r) => r.user,
        (e: unknown) => ConnectError.from(e).code,
      );
    const fresh = async () => Promise.all([admin, suspended, deleted].map((u) => readOn(onA, u?.id ?? "")));

    // Warmed at start-up.
    const c = await startProcess({ DATABASE_URL: databaseUrl, LOG_LEVEL: "info" });
    const onC = clients(c.url, "grpc", () => token);
    const expected = await fresh();
    expect(expected[0]).toEqual(admin);
    expect(await Promise.all([admin, suspended, deleted].map((u) => readOn(onC, u?.id ?? "")))).toEqual(expected);

    // Then changed through another process: C applies the change events over its cached entries.
    const renamed = (
      await onA.users.updateUser({
        user: { id: odd.user.id, displayName: "Ådne ✈ 二", labels: { only: "one" } },
        updateMask: { paths: ["display_name", "labels"] },
      })
    ).user;
    const undeleted = (await onA.users.undeleteUser({ userId: deleted.id })).user;
    // Each change reaches C on its own: seeing the rename there says nothing of the later undelete.
    await until(onC, odd.user.id, (etag) => etag === renamed?.etag);
    await until(onC, deleted.id, (etag) => etag === undeleted?.etag);
    expect(await Promise.all([admin, suspended, deleted].map((u) => readOn(onC, u?.id ?? "")))).toEqual(await fresh());
    expect(await readOn(onC, odd.user.id)).toEqual(renamed);
    c.child.kill("SIGTERM");
    await c.exited;
  });

  it("after the feed connection of both is killed, writes made meanwhile are read", async () => {
    const user = await createPlainUser(a.url, token, "feed-drop");
    await Promise.all([onA.users.getUser({ userId: user.id }), onB.users.getUser({ userId: user.id })]);
    const killed = await query(
      databaseUrl,
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and pid <> pg_backend_pid() and query ilike '%user_changes%'`,
    );
    expect(killed.length).toBeGreaterThanOrEqual(2);
    const after = (
      await onB.users.updateUser({
        user: { id: user.id, displayName: "written while nobody listened" },
        updateMask: { paths: ["display_name"] },
      })
    ).user;
    // Reconnecting takes a backoff of 100 ms; the catch-up brings the change.
    expect(await until(onA, user.id, (etag) => etag === after?.etag)).toBeLessThan(2000);
    expect((await onB.users.getUser({ userId: user.id })).user?.etag).toBe(after?.etag);
  });
});

describe("a cache smaller than the users", () => {
  it("evicts, and every read is still the committed row", async () => {
    const small = await startTestServer({ USER_CACHE_SIZE: "3" });
    try {
      const admin = await adminToken(small.url);
      const on = clients(small.url, "grpc", () => admin);
      const users = await Promise.all(
        [1, 2, 3, 4, 5, 6, 7, 8].map((i) => createPlainUser(small.url, admin, `small${i}`)),
      );
      for (let round = 0; round < 5; round++) {
        for (const [i, u] of users.entries()) {
          if ((i + round) % 3 === 0) {
            await on.users.updateUser({
              user: { id: u.id, displayName: `round ${round}` },
              updateMask: { paths: ["display_name"] },
            });
          }
          const read = (await on.users.getUser({ userId: u.id })).user;
          const rows = await query<{ display_name: string; version: number }>(
            small.databaseUrl,
            "select display_name, version from users where id = $1",
            [u.id],
          );
          expect([read?.displayName, read?.etag]).toEqual([rows[0].display_name, `W/"${rows[0].version}"`]);
        }
      }
      const scrape = await (await fetch(`${small.url}/metrics`)).text();
      const entries = Number(/^user_cache_entries (\d+)$/m.exec(scrape)?.[1]);
      expect(entries).toBeGreaterThan(0);
      expect(entries).toBeLessThanOrEqual(3);
    } finally {
      await small.close();
    }
  });
});
