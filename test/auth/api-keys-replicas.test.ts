/**
 * API keys across replicas (two server processes on one database): a key created on one works on the other
 * at once (an unknown secret waits for one shared poll), and a key deleted on one stops on the other within a
 * second, with no query per call (the registry polls; docs/adr/0019-api-keys.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserState } from "../../gen/user/v1/user_pb.js";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients } from "../helpers/clients.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { expectInvalidToken } from "../security/expect.ts";

let main: TestServer;
let replica: TestServer;
let admin: string;

beforeAll(async () => {
  main = await startTestServer();
  replica = await startTestServer({ DATABASE_URL: main.databaseUrl });
  admin = await adminToken(main.url);
});
afterAll(async () => {
  await replica?.close();
  await main?.close();
});

const me = (server: TestServer, secret: string) => clients(server.url, "grpc", () => secret).auth.getCurrentUser({});

describe("API keys on two replicas", () => {
  it("a key created on one replica works on the other at its first call", async () => {
    const m = await createMember(main.url, admin, { prefix: "replica-new" });
    for (let i = 0; i < 5; i++) {
      const { secret } = await clients(main.url, "grpc", () => admin).users.createApiKey({
        userId: m.user.id,
        displayName: `made on main ${i}`,
      });
      const started = performance.now();
      expect((await me(replica, secret)).user?.id).toBe(m.user.id);
      // One shared poll at most: well under the 500 ms poll period plus a query.
      expect(performance.now() - started).toBeLessThan(1000);
    }
  });

  it("a key deleted on one replica stops there at once and on the other within a second", async () => {
    const m = await createMember(main.url, admin, { prefix: "replica-del" });
    const created = await clients(replica.url, "grpc", () => admin).users.createApiKey({
      userId: m.user.id,
      displayName: "to delete",
    });
    const { secret } = created;
    expect((await me(main, secret)).user?.id).toBe(m.user.id);
    expect((await me(replica, secret)).user?.id).toBe(m.user.id);
    await clients(main.url, "grpc", () => admin).users.deleteApiKey({
      userId: m.user.id,
      apiKeyId: created.apiKey?.id ?? "",
    });
    await expectInvalidToken(me(main, secret), secret);
    const started = performance.now();
    for (;;) {
      const refused = await me(replica, secret).then(
        () => false,
        () => true,
      );
      if (refused) break;
      expect(performance.now() - started).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 20));
    }
    await expectInvalidToken(me(replica, secret), secret);
  });

  it("a suspension on one replica stops the user's key on the other within a second", async () => {
    const m = await createMember(main.url, admin, { prefix: "replica-suspend" });
    const { secret } = await clients(main.url, "grpc", () => admin).users.createApiKey({
      userId: m.user.id,
      displayName: "suspended user",
    });
    expect((await me(replica, secret)).user?.id).toBe(m.user.id);
    await clients(main.url, "grpc", () => admin).users.updateUser({
      user: { id: m.user.id, state: UserState.SUSPENDED },
      updateMask: { paths: ["state"] },
    });
    const started = performance.now();
    while (
      await me(replica, secret).then(
        () => true,
        () => false,
      )
    ) {
      expect(performance.now() - started).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 20));
    }
    await expectInvalidToken(me(replica, secret), secret);
  });
});
