/**
 * The bounded map behind the verified-token cache and the rate limiter's clients: at most `max` entries,
 * the oldest-added dropped first, through many rounds of churn.
 */
import { describe, expect, it } from "vitest";
import { BoundedMap } from "../../src/bounded-map.ts";

describe("BoundedMap", () => {
  it("drops the oldest-added key when a new one arrives and it is full", () => {
    const m = new BoundedMap<string, number>(3);
    for (const [i, k] of ["a", "b", "c", "d"].entries()) m.set(k, i);
    expect([...m.keys()]).toEqual(["b", "c", "d"]);
  });

  it("replaces a key it holds without dropping another", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1).set("b", 2).set("a", 3);
    expect([...m.entries()]).toEqual([
      ["a", 3],
      ["b", 2],
    ]);
  });

  it("counts a key deleted and added again as the newest", () => {
    const m = new BoundedMap<string, number>(3);
    m.set("a", 1).set("b", 2).set("c", 3);
    m.delete("a");
    m.set("a", 4).set("d", 5);
    expect([...m.keys()]).toEqual(["c", "a", "d"]);
  });

  it("stays exact through many rounds of churn, with deletions of its own in between", () => {
    const max = 100;
    const m = new BoundedMap<number, number>(max);
    for (let i = 0; i < 10_000; i++) {
      m.set(i, i);
      if (i % 7 === 0) m.delete(i - 3);
      expect(m.size).toBeLessThanOrEqual(max);
    }
    const kept = [...m.keys()];
    // The newest keys, in insertion order, minus those deleted on purpose.
    const expected = Array.from({ length: 200 }, (_, j) => 9_800 + j)
      .filter((k) => !((k + 3) % 7 === 0 && k + 3 < 10_000))
      .slice(-max);
    expect(kept).toEqual(expected);
  });
});
