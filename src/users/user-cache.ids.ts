/**
 * The user cache's id index (./user-cache.ts, docs/adr/0017): slot of a user id, by the 16 bytes of its UUID
 * in an open-addressing hash table of typed arrays. A Map keyed by the 36-character id strings cost ~100
 * bytes per user (the string and the Map's entry) and one more object per user for the GC to mark; here a
 * user costs 16 bytes of key and 8 of table, outside the JS heap.
 *
 * Only canonical UUIDs (8-4-4-4-12 hex digits, either case) have a key; any other id is not cached (the
 * database decides what it means). Ids read back are lower case, as PostgreSQL writes them.
 */

/** The key words of an id, or false when it is not a canonical UUID. Writes 4 words to `out` at `at`. */
export function uuidWords(id: string, out: Int32Array, at: number): boolean {
  if (id.length !== 36) return false;
  let word = 0;
  let nibbles = 0;
  let w = at;
  for (let i = 0; i < 36; i++) {
    const c = id.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false; // "-"
      continue;
    }
    let v: number;
    if (c >= 48 && c <= 57) v = c - 48;
    else if (c >= 97 && c <= 102) v = c - 87;
    else if (c >= 65 && c <= 70) v = c - 55;
    else return false;
    word = (word << 4) | v;
    if (++nibbles === 8) {
      out[w++] = word;
      word = 0;
      nibbles = 0;
    }
  }
  return true;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function hex8(word: number): string {
  return HEX[(word >>> 24) & 255] + HEX[(word >>> 16) & 255] + HEX[(word >>> 8) & 255] + HEX[word & 255];
}

/** An index from ids to slot numbers (below `capacity`; the caller hands slots out). */
export class IdIndex {
  /** Per slot, the 4 words of its id. */
  private keys: Int32Array;
  /** Open addressing with linear probing: slot + 1, or 0 for an empty place. Twice the capacity or more. */
  private table: Int32Array;
  private mask: number;
  private readonly probe = new Int32Array(4);

  constructor(capacity: number) {
    this.keys = new Int32Array(4 * capacity);
    this.table = new Int32Array(tableSize(capacity));
    this.mask = this.table.length - 1;
  }

  /** The slot of `id`, or -1 when it has none (or is not a canonical UUID). */
  find(id: string): number {
    const p = this.probe;
    if (!uuidWords(id, p, 0)) return -1;
    const { keys, table, mask } = this;
    for (let i = hash(p[0], p[1], p[2], p[3]) & mask; ; i = (i + 1) & mask) {
      const s = table[i] - 1;
      if (s < 0) return -1;
      const k = 4 * s;
      if (keys[k + 3] === p[3] && keys[k + 2] === p[2] && keys[k + 1] === p[1] && keys[k] === p[0]) return s;
    }
  }

  /** Files `slot` under `id` (which has no slot); false when `id` is not a canonical UUID. */
  insert(id: string, slot: number): boolean {
    if (!uuidWords(id, this.keys, 4 * slot)) return false;
    this.place(slot);
    return true;
  }

  /** Takes `slot` out of the index (backward-shift deletion: no tombstones to walk over later). */
  remove(slot: number): void {
    const { table, mask, keys } = this;
    let i = this.placeOf(slot);
    for (let j = (i + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const k = 4 * (table[j] - 1);
      const home = hash(keys[k], keys[k + 1], keys[k + 2], keys[k + 3]) & mask;
      // The entry at j may move to the hole at i when its home is not in (i, j], cyclically.
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        table[i] = table[j];
        i = j;
      }
    }
    table[i] = 0;
  }

  /** The id of a slot in the index, lower case. */
  idOf(slot: number): string {
    const k = 4 * slot;
    const a = hex8(this.keys[k]);
    const b = hex8(this.keys[k + 1]);
    const c = hex8(this.keys[k + 2]);
    const d = hex8(this.keys[k + 3]);
    return `${a}-${b.slice(0, 4)}-${b.slice(4)}-${c.slice(0, 4)}-${c.slice(4)}${d}`;
  }

  /** Room for `capacity` slots; `live(slot)` says which slots below the old capacity are in the index. */
  grow(capacity: number, used: number, live: (slot: number) => boolean): void {
    const keys = new Int32Array(4 * capacity);
    keys.set(this.keys);
    this.keys = keys;
    this.table = new Int32Array(tableSize(capacity));
    this.mask = this.table.length - 1;
    for (let s = 0; s < used; s++) if (live(s)) this.place(s);
  }

  /** Bytes of the keys and the table. */
  bytes(): number {
    return this.keys.byteLength + this.table.byteLength;
  }

  private place(slot: number): void {
    const { table, mask, keys } = this;
    const k = 4 * slot;
    let i = hash(keys[k], keys[k + 1], keys[k + 2], keys[k + 3]) & mask;
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = slot + 1;
  }

  private placeOf(slot: number): number {
    const { table, mask, keys } = this;
    const k = 4 * slot;
    let i = hash(keys[k], keys[k + 1], keys[k + 2], keys[k + 3]) & mask;
    while (table[i] !== slot + 1) i = (i + 1) & mask;
    return i;
  }
}

/** A power of two at least twice `capacity` (the table stays at most half full). */
function tableSize(capacity: number): number {
  let n = 16;
  while (n < 2 * capacity) n *= 2;
  return n;
}

/** Mixes the 4 words (ids may differ in a few digits only, e.g. sequential or v7 UUIDs). */
function hash(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ c, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ d, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
