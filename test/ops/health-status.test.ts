/**
 * The health status on its own, driven by a fake probe: it follows the probe, counts a slow or failing
 * probe as NOT_SERVING, and after shutdown stays NOT_SERVING whatever the probe says.
 */
import { expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { type HealthProbe, startHealth } from "../../src/ops/health.ts";

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
};

it("follows the probe, and a failing or slow probe means NOT_SERVING", async () => {
  let answer: "yes" | "no" | "throw" | "hang" = "yes";
  const probe: HealthProbe = async () => {
    if (answer === "throw") throw new Error("connection refused");
    if (answer === "hang") return new Promise<boolean>(() => {});
    return answer === "yes";
  };
  const health = await startHealth({ services: ["a.v1.A"], probe, intervalMs: 5, timeoutMs: 20 });
  try {
    expect(health.get("")).toBe(Status.SERVING);
    expect(health.get("a.v1.A")).toBe(Status.SERVING);
    expect(health.get("b.v1.B")).toBeUndefined();
    for (const next of ["no", "yes", "throw", "yes", "hang"] as const) {
      answer = next;
      await until(() => health.get("a.v1.A") === (next === "yes" ? Status.SERVING : Status.NOT_SERVING));
    }
  } finally {
    health.shutdown();
  }
});

it("stays NOT_SERVING after shutdown, and Watch reports each change", async () => {
  let up = true;
  const health = await startHealth({ services: ["a.v1.A"], probe: async () => up, intervalMs: 5 });
  const abort = new AbortController();
  const seen: Status[] = [];
  const watching = (async () => {
    for await (const status of health.watch("a.v1.A", abort.signal)) seen.push(status);
  })();
  await until(() => seen.length === 1);
  up = false;
  await until(() => seen.length === 2);
  up = true;
  await until(() => seen.length === 3);
  health.shutdown();
  await until(() => seen.length === 4);
  await new Promise((r) => setTimeout(r, 30));
  expect(health.get("a.v1.A")).toBe(Status.NOT_SERVING);
  expect(health.shutDown).toBe(true);
  abort.abort();
  await watching;
  expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING, Status.NOT_SERVING]);
});

it("Watch on an unknown name says SERVICE_UNKNOWN and ends when the signal aborts", async () => {
  const health = await startHealth({ services: [], probe: async () => true });
  const abort = new AbortController();
  const seen: Status[] = [];
  const watching = (async () => {
    for await (const status of health.watch("nope", abort.signal)) seen.push(status);
  })();
  await until(() => seen.length === 1);
  abort.abort();
  await watching;
  health.shutdown();
  expect(seen).toEqual([Status.SERVICE_UNKNOWN]);
});
