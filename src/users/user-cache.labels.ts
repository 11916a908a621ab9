/**
 * The user cache's label sets (./user-cache.columns.ts, docs/adr/0017): users share a few label sets (a team
 * and a plan, say), so a set is kept once and a user holds its number (4 bytes instead of ~25 of text per
 * user). Counted references free a set nobody holds. At most `LIMIT` sets are shared; past that, a user's
 * labels stay in its own text record (the caller's choice when `ref` returns 0).
 */

const LIMIT = 65_536;

/** Shared label sets. */
export class LabelSets {
  private readonly byKey = new Map<string, number>();
  private sets: (Readonly<Record<string, string>> | undefined)[] = [];
  private keys: string[] = [];
  private refs: number[] = [];
  private free: number[] = [];

  /** A reference (1 or more) to the set `key` encodes, counted; 0 when no more sets can be shared. */
  ref(key: string, labels: Readonly<Record<string, string>>): number {
    let n = this.byKey.get(key);
    if (n === undefined) {
      if (this.byKey.size >= LIMIT) return 0;
      n = this.free.pop() ?? this.sets.length;
      this.sets[n] = { ...labels };
      this.keys[n] = key;
      this.refs[n] = 0;
      this.byKey.set(key, n);
    }
    this.refs[n]++;
    return n + 1;
  }

  /** Drops a reference from `ref`. */
  unref(ref: number): void {
    const n = ref - 1;
    if (--this.refs[n] > 0) return;
    this.byKey.delete(this.keys[n]);
    this.sets[n] = undefined;
    this.keys[n] = "";
    this.free.push(n);
  }

  /** A fresh copy of a set. */
  labels(ref: number): Record<string, string> {
    return { ...this.sets[ref - 1] };
  }

  /** Sets held (for tests). */
  size(): number {
    return this.byKey.size;
  }
}
