import { hash as bcryptHash } from "@node-rs/bcrypt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImportUsersRequest } from "../../gen/user/v1/user_service_pb.js";
import { hashPassword } from "../../src/passwords/passwords.ts";
import { type Clients, clients, failure, type TransportName } from "../helpers/clients.ts";
import { query } from "../helpers/database.ts";
import { ADMIN, startTestServer, type TestServer } from "../helpers/server.ts";

type Row = Partial<Omit<ImportUsersRequest, "$typeName">>;

let server: TestServer;
let token: string;
let argonHash: string;
let bcrypt: string;

beforeAll(async () => {
  server = await startTestServer();
  token = (await clients(server.url, "grpc").auth.login(ADMIN)).tokens?.accessToken ?? "";
  argonHash = await hashPassword("imported-password");
  bcrypt = await bcryptHash("bcrypt-password", { cost: 4 });
});
afterAll(() => server?.close());

const as = (name: TransportName): Clients => clients(server.url, name, () => token);

async function* rows(list: Iterable<Row>) {
  for (const r of list) yield r;
}

/** 50,000 rows: every 97th a bad email, every 101st a duplicate of an earlier row, the rest new. */
function* bigImport(prefix: string, hashes: string): Generator<Row> {
  for (let i = 0; i < 50_000; i++) {
    if (i % 97 === 13)
      yield {
        user: { email: `not-an-email-${i}`, displayName: "Bad" } as never,
        credential: { case: "passwordHash", value: hashes },
      };
    else if (i % 101 === 50)
      yield {
        user: { email: `${prefix}-${i - 50}@example.com`.toUpperCase(), displayName: "Dup" } as never,
        credential: { case: "passwordHash", value: hashes },
      };
    else
      yield {
        user: { email: `${prefix}-${i}@example.com`, displayName: `User ${i}` } as never,
        credential: { case: "passwordHash", value: hashes },
      };
  }
}

describe("ImportUsers", () => {
  it("imports 50,000 rows with exact counts and failure indexes (gRPC)", async () => {
    const expectedBad: number[] = [];
    let expectedDup = 0;
    for (let i = 0; i < 50_000; i++) {
      if (i % 97 === 13) expectedBad.push(i);
      else if (i % 101 === 50) {
        // A duplicate is skipped only when the row it copies was itself imported (not a bad row).
        if ((i - 50) % 97 !== 13) expectedDup++;
      }
    }
    const res = await as("grpc").users.importUsers(rows(bigImport("big", argonHash)));
    expect(res.failures.map((f) => f.index)).toEqual(expectedBad);
    expect(res.failures[0].reason).toMatch(/email/);
    expect(res.skippedCount).toBe(expectedDup);
    expect(res.createdCount).toBe(50_000 - expectedBad.length - expectedDup);
    const [{ n }] = await query<{ n: string }>(
      server.databaseUrl,
      "select count(*) as n from users where lower(email) like 'big-%'",
    );
    expect(Number(n)).toBe(res.createdCount);
    const [{ c }] = await query<{ c: string }>(
      server.databaseUrl,
      "select count(*) as c from user_changes where type = 'created' and lower(snapshot->>'email') like 'big-%'",
    );
    expect(Number(c)).toBe(res.createdCount);
    // Each batch's changes are numbered right after its commit, before the call answers (ADR 0016).
    const [{ unsequenced }] = await query<{ unsequenced: string }>(
      server.databaseUrl,
      "select count(*) as unsequenced from user_changes where seq is null and lower(snapshot->>'email') like 'big-%'",
    );
    expect(Number(unsequenced)).toBe(0);
  }, 120_000);

  it("keeps the first row of an email when later batches, written at the same time, repeat it in another order", async () => {
    // Batches of 1,000 are written two at a time. Rows 1000-1999 (batch 2) hold emails x and y; batch 3
    // repeats them in the opposite order (y then x, in another case), as do rows further on: each repeat is
    // skipped, and the users created are those of the first rows, in every case. Batch 2 has plain passwords
    // to hash first, so batch 3 would reach the database before it if nothing held it back.
    const email = (i: number) => `order-${i}@example.com`;
    const list: Row[] = [];
    for (let i = 0; i < 4000; i++) {
      const copies = i === 2050 ? 1900 : i === 2950 ? 1100 : i === 3500 ? 1500 : undefined;
      list.push({
        user: {
          email: copies === undefined ? email(i) : email(copies).toUpperCase(),
          displayName: copies === undefined ? `First ${i}` : `Repeat ${i}`,
        } as never,
        credential:
          i >= 1000 && i < 1020
            ? { case: "password", value: `password-order-${i}` }
            : { case: "passwordHash", value: argonHash },
      });
    }
    const res = await as("grpc").users.importUsers(rows(list));
    expect(res.failures).toEqual([]);
    expect(res.skippedCount).toBe(3);
    expect(res.createdCount).toBe(3997);
    const created = await query<{ email: string; display_name: string }>(
      server.databaseUrl,
      "select email, display_name from users where lower(email) in ($1, $2, $3)",
      [email(1100), email(1500), email(1900)],
    );
    expect(created.map((u) => [u.email, u.display_name]).sort()).toEqual([
      [email(1100), "First 1100"],
      [email(1500), "First 1500"],
      [email(1900), "First 1900"],
    ]);
  }, 60_000);

  it.each<TransportName>(["connect-h1", "connect-h2"])(
    "works over %s, hashing plain passwords and validating each row",
    async (name) => {
      const res = await as(name).users.importUsers(
        rows([
          {
            user: { email: `${name}-a@example.com`, displayName: "A" } as never,
            credential: { case: "password", value: "password-a-123" },
          },
          {
            user: { email: `${name}-b@example.com`, displayName: "" } as never,
            credential: { case: "password", value: "password-b-123" },
          },
          {
            user: { email: `${name}-c@example.com`, displayName: "C" } as never,
            credential: { case: "password", value: "short" },
          },
          {
            user: { email: `${name}-d@example.com`, displayName: "D" } as never,
            credential: { case: "passwordHash", value: "$md5$nope" },
          },
          { user: { email: `${name}-e@example.com`, displayName: "E" } as never },
          {
            user: { email: `${name}-A@EXAMPLE.com`, displayName: "A again" } as never,
            credential: { case: "password", value: "password-a-123" },
          },
        ]),
      );
      expect(res.createdCount).toBe(1);
      expect(res.skippedCount).toBe(1);
      expect(res.failures.map((f) => [f.index, f.reason.split(":")[0]])).toEqual([
        [1, "user.display_name"],
        [2, "password"],
        [3, "password_hash"],
        [4, "password or password_hash"],
      ]);
      const login = await clients(server.url, name).auth.login({
        email: `${name}-a@example.com`,
        password: "password-a-123",
      });
      expect(login.user?.displayName).toBe("A");
    },
  );

  it("verifies an imported bcrypt hash at login and re-hashes it to argon2id", async () => {
    const res = await as("grpc").users.importUsers(
      rows([
        {
          user: { email: "bcrypt@example.com", displayName: "B" } as never,
          credential: { case: "passwordHash", value: bcrypt },
        },
      ]),
    );
    expect(res.createdCount).toBe(1);
    const anon = clients(server.url, "grpc");
    expect((await failure(anon.auth.login({ email: "bcrypt@example.com", password: "wrong-password" }))).reason).toBe(
      "INVALID_CREDENTIALS",
    );
    await anon.auth.login({ email: "bcrypt@example.com", password: "bcrypt-password" });
    const [row] = await query<{ password_hash: string }>(
      server.databaseUrl,
      "select password_hash from users where email = 'bcrypt@example.com'",
    );
    expect(row.password_hash.startsWith("$argon2id$")).toBe(true);
    await anon.auth.login({ email: "bcrypt@example.com", password: "bcrypt-password" });
  });
});
