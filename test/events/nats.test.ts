/**
 * Publishing to NATS JetStream (docs/nats.md) against a real nats-server -js: every user change and auth
 * event once, in order, on users.<type>, with Nats-Msg-Id = the event id; the stream created when missing;
 * the metrics; a bad NATS_URL refused at start-up.
 */
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SERVER_ENTRY } from "../../scripts/ensure-built.ts";
import { adminToken, createMember } from "../helpers/accounts.ts";
import { clients, failure } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { databaseEvents, expectStreamMatchesDatabase, type NatsServer, startNats } from "../helpers/nats.ts";
import { JWT_SECRET, startTestServer, type TestServer } from "../helpers/server.ts";
import { parsePrometheusText, sampleKey } from "../ops/prometheus-text.ts";

let nats: NatsServer;
let server: TestServer;

beforeAll(async () => {
  nats = await startNats();
  server = await startTestServer({ NATS_URL: nats.url });
});
afterAll(async () => {
  await server?.close();
  await nats?.dispose();
});

async function scrape(): Promise<Map<string, number>> {
  return parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
}

describe("NATS JetStream publishing", () => {
  it("publishes every user change and auth event once, in order, on users.<type>, with the event id", async () => {
    const admin = await adminToken(server.url);
    const as = clients(server.url, "grpc", () => admin);
    const member = await createMember(server.url, admin, { prefix: "nats" });
    await as.users.updateUser({
      user: { id: member.user.id, displayName: "Renamed" },
      updateMask: { paths: ["display_name"] },
    });
    await failure(clients(server.url, "grpc").auth.login({ email: member.email, password: "wrong-password-1" }));
    await as.users.deleteUser({ userId: member.user.id });

    // Auth events are written in batches: wait for the failed login's to be in the database, then compare.
    await expect
      .poll(async () => (await databaseEvents(server.databaseUrl)).map((e) => e.subject))
      .toContain("users.auth.login_failed");
    const messages = await expectStreamMatchesDatabase(nats.url, server.databaseUrl);
    const subjects = new Set(messages.map((m) => m.subject));
    for (const s of ["users.user.created", "users.user.updated", "users.user.deleted"]) expect(subjects).toContain(s);
    for (const s of ["users.auth.login_succeeded", "users.auth.login_failed"]) expect(subjects).toContain(s);

    // The payload is the webhook body's shape: the type, the event time, the proto JSON of the event.
    const updated = messages.find((m) => m.subject === "users.user.updated");
    expect(updated?.body.type).toBe("user.updated");
    expect(updated?.body.data).toMatchObject({ user: { id: member.user.id, displayName: "Renamed" } });
    const failed = messages.find((m) => m.subject === "users.auth.login_failed");
    expect(failed?.body.data).toMatchObject({ id: failed?.msgId, type: "AUTH_EVENT_TYPE_LOGIN_FAILED" });
    expect(new Date(failed?.body.timestamp ?? "").getTime()).not.toBeNaN();

    // The cursor is the last event confirmed in the stream.
    const [row] = await query<{ cursor_seq: string; lease_owner: string | null }>(
      server.databaseUrl,
      "select cursor_seq, lease_owner from event_publishers where name = 'nats'",
    );
    expect(Number(row.cursor_seq)).toBe(messages[messages.length - 1].eventSeq);
    expect(row.lease_owner).not.toBeNull();

    const samples = await scrape();
    expect(samples.get("nats_connected")).toBe(1);
    expect(samples.get(sampleKey("nats_published_total", { type: "user.created" }))).toBeGreaterThanOrEqual(2);
    expect(samples.get(sampleKey("nats_published_total", { type: "auth.login_failed" }))).toBe(1);
    expect(samples.get(sampleKey("nats_publish_failures_total", { reason: "unavailable" }))).toBe(0);
    expect(samples.get("nats_publish_lag_seconds")).toBe(0);
  });

  it("reports the lag while events wait, and a replica taking the lease back resumes with no event twice", async () => {
    // Another owner holds the lease, and the cursor is one event behind the stream, from an hour ago.
    await query(
      server.databaseUrl,
      `update event_publishers set lease_owner = 'elsewhere', lease_until = now() + interval '1 minute',
         cursor_seq = cursor_seq - 1, cursor_time = now() - interval '1 hour' where name = 'nats'`,
    );
    expect((await scrape()).get("nats_publish_lag_seconds")).toBeGreaterThan(3000);
    // The lease expires: this replica takes it back and catches up, the event at the cursor not stored twice.
    await query(server.databaseUrl, "update event_publishers set lease_until = now() where name = 'nats'");
    await expect.poll(async () => (await scrape()).get("nats_publish_lag_seconds"), { timeout: 5000 }).toBe(0);
    await expectStreamMatchesDatabase(nats.url, server.databaseUrl);
  });

  it("refuses a NATS_URL that is not a nats:// or tls:// URL at start-up, in one line without the value", async () => {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = execFile(
        process.execPath,
        [SERVER_ENTRY],
        {
          cwd: tmpdir(),
          env: {
            PATH: process.env.PATH ?? "",
            DATABASE_URL: "postgres://nobody:nothing@127.0.0.1:1/none",
            JWT_SECRET,
            NATS_URL: "http://user:s3cret-value@nats:4222",
          },
          timeout: 20_000,
        },
        (_err, _stdout, stderr) => done({ code: child.exitCode, stderr }),
      );
    });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(
      "configuration error: NATS_URL: is not a nats:// or tls:// URL (several may be given, comma-separated)",
    );
  });
});
