import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Columns } from "../../src/users/user-cache.columns.ts";
import { IdIndex } from "../../src/users/user-cache.ids.ts";

describe("the user cache's id index", () => {
  it("finds every id it holds after random inserts and removals, with the table growing", () => {
    let index = new IdIndex(16);
    let capacity = 16;
    const model = new Map<string, number>();
    const freeSlots: number[] = [];
    let next = 0;
    // Sequential ids (differing in the last digits only) and random ones, as in real tables.
    const ids = [
      ...Array.from({ length: 3000 }, (_, i) => `b0000000-0000-4000-8000-${String(i).padStart(12, "0")}`),
      ...Array.from({ length: 3000 }, () => randomUUID()),
    ];
    for (let round = 0; round < 20_000; round++) {
      const id = ids[Math.floor(Math.random() * ids.length)];
      const slot = model.get(id);
      if (slot === undefined) {
        const s = freeSlots.pop() ?? next++;
        if (s >= capacity) {
          capacity *= 2;
          const live = new Set(model.values());
          index.grow(capacity, next - 1, (x) => live.has(x));
        }
        expect(index.insert(id, s)).toBe(true);
        model.set(id, s);
      } else if (Math.random() < 0.5) {
        index.remove(slot);
        model.delete(id);
        freeSlots.push(slot);
      }
      if (round % 1000 === 0) for (const [k, v] of model) expect(index.find(k)).toBe(v);
    }
    for (const id of ids) expect(index.find(id)).toBe(model.get(id) ?? -1);
    index = new IdIndex(4);
    expect(index.insert("B0000000-0000-4000-8000-0000000000AF", 0)).toBe(true);
    expect(index.find("b0000000-0000-4000-8000-0000000000af")).toBe(0);
    expect(index.idOf(0)).toBe("b0000000-0000-4000-8000-0000000000af");
  });

  it("gives no slot to an id that is not a canonical UUID", () => {
    const index = new IdIndex(4);
    for (const id of [
      "",
      "not-a-uuid",
      "b0000000000040008000000000000000",
      "{b0000000-0000-4000-8000-000000000001}",
      "g0000000-0000-4000-8000-000000000001",
      "b0000000-0000-4000-8000_000000000001",
    ]) {
      expect(index.insert(id, 0)).toBe(false);
      expect(index.find(id)).toBe(-1);
    }
  });

  it("keeps every field through rewrites, and compacts the text after many of them", () => {
    const columns = new Columns(2, 100);
    const ids = Array.from({ length: 100 }, () => randomUUID());
    const slots = ids.map((id) => columns.alloc(id));
    const userOf = (i: number, v: number) => ({
      id: ids[i],
      email: `ü${i}-${v}@example.com`,
      displayName: `名前 ${i} ${"x".repeat(5000 + (v % 50))}`,
      role: i % 2 ? ("admin" as const) : ("user" as const),
      state: (["active", "suspended", "deleted"] as const)[i % 3],
      kind: i % 7 === 0 ? ("service" as const) : ("human" as const),
      emailVerified: (i + v) % 2 === 0,
      passwordChangeRequired: (i + v) % 3 === 0,
      labels: (i % 4 ? { team: `t${i}`, empty: "", v: String(v) } : {}) as Record<string, string>,
      version: v,
      createMs: 1_700_000_000_123 + i,
      updateMs: 1_700_000_100_456 + v,
      deleteMs: i % 3 === 2 ? 1_700_000_200_789 : null,
      tokensValidAfterMs: i % 5 === 0 ? 1_700_000_300_000 + v : null,
    });
    for (let v = 1; v <= 2000; v++) {
      const i = v % 100;
      expect(columns.write(slots[i], userOf(i, v))).toBe(true);
    }
    for (let i = 0; i < 100; i++) {
      const v = i === 0 ? 2000 : 1900 + i;
      const f = userOf(i, v);
      expect(columns.user(slots[i])).toEqual({
        id: f.id,
        email: f.email,
        displayName: f.displayName,
        role: f.role,
        state: f.state,
        kind: f.kind,
        labels: f.labels,
        emailVerified: f.emailVerified,
        passwordChangeRequired: f.passwordChangeRequired,
        version: v,
        createTime: new Date(f.createMs),
        updateTime: new Date(f.updateMs),
        deleteTime: f.deleteMs === null ? null : new Date(f.deleteMs),
        tokensValidAfter: f.tokensValidAfterMs === null ? null : new Date(f.tokensValidAfterMs),
      });
      expect(columns.status(slots[i])).toEqual({
        role: f.role,
        state: f.state,
        tokensValidAfterMs: f.tokensValidAfterMs ?? 0,
        passwordChangeRequired: f.passwordChangeRequired,
      });
    }
    // 10 MB written, 0.5 MB live: the text was compacted into a few chunks.
    expect(columns.externalBytes()).toBeLessThan(4 * 2 ** 20);
    expect(columns.write(slots[0], { ...userOf(0, 1), labels: { a: "x\0y" } })).toBe(false);
  });
});
