import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";
import { clients, failure, type TransportName } from "../helpers/clients.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.close());

describe.each<TransportName>(["grpc", "connect-h1", "connect-h2", "connect-json-h1", "grpc-web-h1", "grpc-web-h2"])("%s", (name) => {
  it("logs in and reads itself", async () => {
    let token: string | undefined;
    const c = clients(server.url, name, () => token);
    const res = await c.auth.login(ADMIN);
    token = res.tokens?.accessToken;
    const me = await c.auth.getCurrentUser({});
    expect(me.user?.email).toBe(ADMIN.email);
    const f = await failure(c.users.getUser({ userId: "not-a-uuid" }));
    expect(f.reason).toBe("INVALID_ARGUMENT");
  });
});
