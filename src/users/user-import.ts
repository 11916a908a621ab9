/**
 * ImportUsers: validates each row on its own (a bad row becomes a failure and never aborts the import),
 * hashes plain passwords or keeps PHC hashes as given, and writes rows in batches of 1000, each in its own
 * transaction. While batches are written the next is read and validated, and two batches are written at
 * once, on two connections (docs/adr/0018: the server sat idle half the time waiting for each insert). A
 * batch that shares an email (any case) with one being written waits for it, so the earlier row is the one
 * created, as in stream order. Never more than two batches in flight and one being read, so memory stays
 * flat however long the stream, and a slow database slows the client down (backpressure).
 */
import { randomUUID } from "node:crypto";
import type { Validator } from "@bufbuild/protovalidate";
import { UserSchema } from "../../gen/user/v1/user_pb.js";
import {
  type ImportFailure,
  type ImportUsersRequest,
  ImportUsersRequestSchema,
} from "../../gen/user/v1/user_service_pb.js";
import { weakPasswordProblem } from "../passwords/password-policy.ts";
import { hashPasswords, hashProblem } from "../passwords/passwords.ts";
import type { Actor } from "../rpc/actor.ts";
import { toFieldViolations } from "../rpc/errors.ts";
import { stringViolations } from "../rpc/strings.ts";
import { roleFromProto } from "./user.message.ts";
import type { ImportedUser, UserStore } from "./user-store.ts";

const BATCH = 1000;
/** Batches written at the same time (each on its own pooled connection). */
const IN_FLIGHT = 2;

/** A batch being written, and the emails (lower case) it may create. */
interface Writing {
  done: Promise<void>;
  emails: Set<string>;
}

type Pending = { row: ImportedUser; password?: string };

/** Why a row cannot be imported, or undefined when it can. */
function problemOf(req: ImportUsersRequest, validator: Validator): string | undefined {
  // Strings the database cannot store (NUL, invalid UTF-8) first: they would fail the whole batch's insert.
  const unstorable = stringViolations(ImportUsersRequestSchema, req);
  if (unstorable.length > 0) return unstorable.map((v) => `${v.field}: ${v.description}`).join("; ");
  const u = req.user;
  if (!u) return "user: is required";
  if (!u.email) return "user.email: is required";
  if (!u.displayName) return "user.display_name: is required";
  const result = validator.validate(UserSchema, u);
  if (result.kind === "invalid") {
    return toFieldViolations(result.error.violations)
      .map((v) => `user.${v.field}: ${v.description}`)
      .join("; ");
  }
  if (result.kind === "error") return "user: could not be validated";
  const c = req.credential;
  if (c.case === "password") {
    const n = [...c.value].length;
    if (n < 8 || n > 128) return "password: must be 8 to 128 characters";
    const weak = weakPasswordProblem(c.value, u.email);
    if (weak) return `password: ${weak}`;
  } else if (c.case === "passwordHash") {
    const bad = hashProblem(c.value);
    if (bad) return `password_hash: ${bad}`;
  } else {
    return "password or password_hash: one is required";
  }
  return undefined;
}

/** Runs an import over a request stream; returns the counts and failures for the response. */
export async function importUsers(
  requests: AsyncIterable<ImportUsersRequest>,
  deps: { users: Pick<UserStore, "importBatch">; validator: Validator; actor?: Actor },
): Promise<{ createdCount: number; skippedCount: number; failures: Omit<ImportFailure, "$typeName">[] }> {
  let createdCount = 0;
  let skippedCount = 0;
  const failures: Omit<ImportFailure, "$typeName">[] = [];
  let batch: Pending[] = [];
  const writing: Writing[] = [];

  const write = async (pending: Pending[]) => {
    const hashes = await hashPasswords(pending.flatMap((p) => (p.password === undefined ? [] : [p.password])));
    let h = 0;
    const rows = pending.map((p) => (p.password === undefined ? p.row : { ...p.row, passwordHash: hashes[h++] }));
    const created = await deps.users.importBatch(rows, deps.actor);
    createdCount += created.size;
    skippedCount += rows.length - created.size;
  };
  /** Waits for the oldest batch in flight; its error, if any, ends the import. */
  const settleOldest = async () => {
    await writing.shift()?.done;
  };
  /** Starts writing the current batch once there is room for it, and once no batch in flight shares an email. */
  const flush = async () => {
    if (batch.length === 0) return;
    const pending = batch;
    batch = [];
    const emails = new Set(pending.map((p) => p.row.email.toLowerCase()));
    // Two transactions inserting the same email would make the later row win when it commits first (or
    // deadlock, inserting two emails in opposite orders): a batch sharing one waits for every batch before it.
    const shares = writing.some((w) => [...emails].some((e) => w.emails.has(e)));
    while (writing.length > 0 && (shares || writing.length >= IN_FLIGHT)) await settleOldest();
    const done = write(pending);
    // Observed now so a failing write never becomes an unhandled rejection (which would end the process);
    // the error still surfaces when the batch is settled.
    done.catch(() => {});
    writing.push({ done, emails });
  };

  let index = 0;
  for await (const req of requests) {
    const i = index++;
    const problem = problemOf(req, deps.validator);
    if (problem) {
      // An email the database could not store is not echoed either: the index identifies the row.
      const email = req.user?.email ?? "";
      failures.push({ index: i, email: problem.includes("user.email:") ? "" : email, reason: problem });
      continue;
    }
    const u = req.user as NonNullable<ImportUsersRequest["user"]>;
    const c = req.credential as { case: "password" | "passwordHash"; value: string };
    batch.push({
      row: {
        id: randomUUID(),
        email: u.email,
        displayName: u.displayName,
        role: roleFromProto(u.role) ?? "user",
        labels: { ...u.labels },
        passwordHash: c.case === "passwordHash" ? c.value : "",
      },
      password: c.case === "password" ? c.value : undefined,
    });
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  while (writing.length > 0) await settleOldest();
  return { createdCount, skippedCount, failures };
}
