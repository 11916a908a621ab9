/**
 * The auth event recorder against real PostgreSQL when writes fail (docs/adr/0023-auth-events.md): events
 * are kept while the database refuses them, the oldest dropped (and counted) beyond the bound, written in
 * order once it answers again, and counted as dropped when it never does before close. `record` never
 * throws and never waits.
 */
import { createContextValues } from "@connectrpc/connect";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthEventRecorder, createEventIds } from "../../src/auth/auth-event-recorder.ts";
import { kClientAddress } from "../../src/rpc/context.ts";
import { createTestDatabase } from "../helpers/database.ts";

let url: string;
let pool: pg.Pool;
beforeAll(async () => {
  url = await createTestDatabase();
  pool = new pg.Pool({ connectionString: url, max: 2 });
});
afterAll(async () => {
  await pool?.end();
});

const call = {
  values: createContextValues().set(kClientAddress, "198.51.100.4"),
  requestHeader: new Headers({ "user-agent": "recorder-test" }),
};
const quiet = pino({ level: "silent" });

describe("the recorder", () => {
  it("keeps events while writes fail, drops the oldest beyond its bound, and writes the rest in order", async () => {
    const dropped: [string, number][] = [];
    const recorded: [string, number][] = [];
    const r = createAuthEventRecorder({
      pool,
      log: quiet,
      everyMs: 3_600_000,
      max: 3,
      onDropped: (why, n) => dropped.push([why, n]),
      onRecorded: (type, n) => recorded.push([type, n]),
    });
    await pool.query("alter table auth_events rename to auth_events_away");
    try {
      // A NUL (which PostgreSQL text refuses) would fail the whole batch: removed.
      for (const email of ["e1", "e2", "e\u00003", "e4"]) r.record("LOGIN_FAILED", call, { email });
      await r.flush();
      r.record("LOGOUT", call, { userId: "not-a-uuid", email: "e5" });
      await r.flush();
      expect(r.buffered()).toBe(3);
      expect(dropped).toEqual([
        ["full", 1],
        ["full", 1],
      ]);
    } finally {
      await pool.query("alter table auth_events_away rename to auth_events");
    }
    await r.flush();
    expect(r.buffered()).toBe(0);
    const { rows } = await pool.query(
      "select type, email, user_id, user_agent, client_address from auth_events order by id",
    );
    expect(rows).toEqual([
      { type: "LOGIN_FAILED", email: "e3", user_id: null, user_agent: "recorder-test", client_address: "198.51.100.4" },
      { type: "LOGIN_FAILED", email: "e4", user_id: null, user_agent: "recorder-test", client_address: "198.51.100.4" },
      { type: "LOGOUT", email: "e5", user_id: null, user_agent: "recorder-test", client_address: "198.51.100.4" },
    ]);
    expect(recorded.sort()).toEqual([
      ["LOGIN_FAILED", 2],
      ["LOGOUT", 1],
    ]);
    await r.close();
    r.record("LOGOUT", call);
    expect(dropped.at(-1)).toEqual(["closed", 1]);
  });

  it("counts what it could not write before close as dropped", async () => {
    const away = new pg.Pool({ connectionString: "postgres://nobody@127.0.0.1:1/none", connectionTimeoutMillis: 200 });
    const dropped: [string, number][] = [];
    const r = createAuthEventRecorder({ pool: away, log: quiet, onDropped: (why, n) => dropped.push([why, n]) });
    const started = performance.now();
    for (let i = 0; i < 10; i++) r.record("LOGIN_SUCCEEDED", call);
    expect(performance.now() - started).toBeLessThan(50);
    await r.close();
    expect(dropped).toEqual([["closed", 10]]);
    await away.end();
  });

  it("makes UUIDv7 ids that increase within the process", () => {
    const next = createEventIds();
    const now = Date.now();
    const ids = Array.from({ length: 5000 }, () => next(now));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(ids[0].replace(/-/g, "").slice(0, 12), 16)).toBe(now);
  });
});
