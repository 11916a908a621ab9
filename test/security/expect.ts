/**
 * The assertions the security suite repeats: how a rejected token, a denied call and a throttled call must
 * look on the wire (status code, ErrorInfo reason, and a message that teaches an attacker nothing).
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { failure } from "../helpers/clients.ts";

/** The one message of every rejected token (src/auth/tokens.ts). */
export const INVALID_TOKEN = "invalid or revoked token";

/** Expects UNAUTHENTICATED / UNAUTHENTICATED with the generic message, and the token never echoed. */
export async function expectInvalidToken(call: Promise<unknown>, token?: string): Promise<void> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason, message: f.message }).toEqual({
    code: Code[Code.Unauthenticated],
    reason: "UNAUTHENTICATED",
    message: INVALID_TOKEN,
  });
  if (token) expect(f.message).not.toContain(token);
}

/** Expects PERMISSION_DENIED / PERMISSION_DENIED. */
export async function expectDenied(call: Promise<unknown>): Promise<void> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({
    code: Code[Code.PermissionDenied],
    reason: "PERMISSION_DENIED",
  });
}

/** Expects RESOURCE_EXHAUSTED with `reason` and a RetryInfo; returns the retry delay in milliseconds. */
export async function expectRetryLater(
  call: Promise<unknown>,
  reason: "ACCOUNT_LOCKED" | "RATE_LIMITED",
): Promise<number> {
  const f = await failure(call);
  expect({ code: Code[f.code], reason: f.reason }).toEqual({ code: Code[Code.ResourceExhausted], reason });
  return retryDelayMs(f.error);
}

/** The RetryInfo delay of an error in milliseconds (fails the test when there is none). */
export function retryDelayMs(err: ConnectError): number {
  const info = err.findDetails(RetryInfoSchema)[0];
  expect(info?.retryDelay, "RetryInfo detail").toBeDefined();
  const d = info?.retryDelay;
  return Number(d?.seconds ?? 0n) * 1000 + Math.round((d?.nanos ?? 0) / 1e6);
}

/** Drains a server stream, so that its error (if any) surfaces as a rejection. */
export async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of stream) n++;
  return n;
}
