/**
 * The storage of the user cache (./user-cache.ts): one slot per user, in typed-array columns outside the JS
 * heap (docs/adr/0007, 0017). The slot of an id is found through its 16 UUID bytes (./user-cache.ids.ts);
 * role, state, the slot's kind, the clock's used bit and the user's kind, email-verified and
 * password-change-required bits share one 16-bit word; version and the create and update instants
 * have columns; the delete and tokens-valid-after instants, set for few users, are in maps by slot; labels
 * are a reference to a shared label set (./user-cache.labels.ts); email and display name are one UTF-8
 * record (`email \0 displayName`, then `\0 key \0 value` pairs when the labels are not shared; PostgreSQL
 * text and jsonb cannot hold a NUL) in chunks (./user-cache.text.ts). A user costs ~57 bytes plus its text
 * (~99 in all for the benchmark's users, against ~200 with a Map of id strings and a string per user), and
 * the GC has no per-user object to mark. The columns grow by doubling up to `max` slots.
 */

import type { KindName, RoleName, StateName, User, UserStatus } from "./user.ts";
import { IdIndex } from "./user-cache.ids.ts";
import { LabelSets } from "./user-cache.labels.ts";
import { TextArena } from "./user-cache.text.ts";

/** A user as the cache takes it in: instants as epoch ms (null for a time that is not set), no Dates. */
export interface CompactUser {
  id: string;
  email: string;
  displayName: string;
  role: RoleName;
  state: StateName;
  kind: KindName;
  labels: Record<string, string>;
  emailVerified: boolean;
  passwordChangeRequired: boolean;
  version: number;
  createMs: number;
  updateMs: number;
  deleteMs: number | null;
  tokensValidAfterMs: number | null;
}

/** A user in the cache's terms. */
export function compactOf(u: User): CompactUser {
  return {
    id: u.id,
    email: u.email,
    displayName: u.displayName,
    role: u.role,
    state: u.state,
    kind: u.kind,
    labels: u.labels,
    emailVerified: u.emailVerified,
    passwordChangeRequired: u.passwordChangeRequired,
    version: u.version,
    createMs: u.createTime.getTime(),
    updateMs: u.updateTime.getTime(),
    deleteMs: u.deleteTime?.getTime() ?? null,
    tokensValidAfterMs: u.tokensValidAfter?.getTime() ?? null,
  };
}

const ROLES: readonly RoleName[] = ["user", "admin"];
const STATES: readonly StateName[] = ["active", "suspended", "deleted"];

/**
 * The flag word of a slot: the slot's kind (2 bits), role (1), state (2), used (1), then the user's kind
 * (service: 1), email verified (1), password change required (1).
 */
const KIND = 0b11;
const FREE = 0;
const ABSENT = 1; // the database said there is no such user (kept, so unknown ids in tokens cost no query)
/** A slot holding a user. */
export const PRESENT = 2;
const ROLE_SHIFT = 2;
const STATE_SHIFT = 3;
const USED = 1 << 5;
const SERVICE = 1 << 6;
const EMAIL_VERIFIED = 1 << 7;
const CHANGE_REQUIRED = 1 << 8;

/** The slots. */
export class Columns {
  /** Slots handed out so far (free ones below this are in `free`). */
  count = 0;
  private free: number[] = [];
  private readonly index: IdIndex;
  private flags: Uint16Array;
  private versions: Int32Array;
  /** Per slot: create and update instants, epoch ms. */
  private times: Float64Array;
  private textAt: Uint32Array;
  private textLength: Uint32Array;
  private text = new TextArena();
  /** Per slot, its shared label set (./user-cache.labels.ts), or 0: no labels, or in its text record. */
  private labelRef: Uint32Array;
  private readonly labelSets = new LabelSets();
  /** Delete and tokens-valid-after instants by slot, for the slots that have one. */
  private readonly deleted = new Map<number, number>();
  private readonly validAfter = new Map<number, number>();
  private capacity: number;
  private readonly max: number;

  constructor(capacity: number, max: number) {
    this.capacity = Math.max(1, capacity);
    this.max = max;
    this.index = new IdIndex(this.capacity);
    this.flags = new Uint16Array(this.capacity);
    this.versions = new Int32Array(this.capacity);
    this.times = new Float64Array(2 * this.capacity);
    this.textAt = new Uint32Array(this.capacity);
    this.textLength = new Uint32Array(this.capacity);
    this.labelRef = new Uint32Array(this.capacity);
  }

  /** Slots holding a user or an absence. */
  size(): number {
    return this.count - this.free.length;
  }

  /** The slot of an id, or -1. */
  find(id: string): number {
    return this.index.find(id);
  }

  /** A slot for `id` (which has none; the caller keeps the total under `max`), or -1 when it cannot have one. */
  alloc(id: string): number {
    const reused = this.free.pop();
    const slot = reused ?? this.count;
    if (slot >= this.capacity) this.grow();
    if (!this.index.insert(id, slot)) {
      if (reused !== undefined) this.free.push(reused);
      return -1;
    }
    if (reused === undefined) this.count++;
    this.flags[slot] = ABSENT;
    return slot;
  }

  release(slot: number): void {
    this.index.remove(slot);
    this.clearText(slot);
    this.deleted.delete(slot);
    this.validAfter.delete(slot);
    this.flags[slot] = FREE;
    this.free.push(slot);
  }

  isFree(slot: number): boolean {
    return (this.flags[slot] & KIND) === FREE;
  }

  isPresent(slot: number): boolean {
    return (this.flags[slot] & KIND) === PRESENT;
  }

  version(slot: number): number {
    return this.versions[slot];
  }

  /** Marks a slot as read (the eviction clock spares it once). */
  markUsed(slot: number): void {
    this.flags[slot] |= USED;
  }

  /** Clears the used mark; returns whether it was set. */
  takeUsed(slot: number): boolean {
    const f = this.flags[slot];
    this.flags[slot] = f & ~USED;
    return (f & USED) !== 0;
  }

  /** Stores a user (or that there is none) in a slot; false when a value does not fit (then not kept). */
  write(slot: number, f: CompactUser | null): boolean {
    const used = this.flags[slot] & USED;
    this.clearText(slot);
    this.deleted.delete(slot);
    this.validAfter.delete(slot);
    if (!f) {
      this.flags[slot] = ABSENT | used;
      return true;
    }
    const role = ROLES.indexOf(f.role);
    const state = STATES.indexOf(f.state);
    if (role < 0 || state < 0 || !Number.isInteger(f.version) || f.version > 0x7fffffff) return false;
    const parts = [f.email, f.displayName];
    for (const key in f.labels) parts.push(key, f.labels[key]);
    for (const part of parts) if (part.includes("\0")) return false; // would split wrong (not seen from PostgreSQL)
    const ref = parts.length > 2 ? this.labelSets.ref(parts.slice(2).join("\0"), f.labels) : 0;
    this.labelRef[slot] = ref;
    if (ref !== 0) parts.length = 2;
    this.textAt[slot] = this.text.put(parts.join("\0"));
    this.textLength[slot] = this.text.lastLength;
    this.flags[slot] =
      PRESENT |
      (role << ROLE_SHIFT) |
      (state << STATE_SHIFT) |
      used |
      (f.kind === "service" ? SERVICE : 0) |
      (f.emailVerified ? EMAIL_VERIFIED : 0) |
      (f.passwordChangeRequired ? CHANGE_REQUIRED : 0);
    this.versions[slot] = f.version;
    this.times[2 * slot] = f.createMs;
    this.times[2 * slot + 1] = f.updateMs;
    if (f.deleteMs !== null) this.deleted.set(slot, f.deleteMs);
    if (f.tokensValidAfterMs !== null) this.validAfter.set(slot, f.tokensValidAfterMs);
    if (this.text.wasteful()) this.compactText();
    return true;
  }

  /** A fresh user of a present slot. */
  user(slot: number): User {
    const parts = this.text.get(this.textAt[slot], this.textLength[slot]).split("\0");
    const ref = this.labelRef[slot];
    const labels: Record<string, string> = ref !== 0 ? this.labelSets.labels(ref) : {};
    for (let i = 2; i < parts.length; i += 2) labels[parts[i]] = parts[i + 1];
    const flags = this.flags[slot];
    const deleteMs = this.deleted.get(slot);
    const validAfterMs = this.validAfter.get(slot);
    return {
      id: this.index.idOf(slot),
      email: parts[0],
      displayName: parts[1],
      role: ROLES[(flags >> ROLE_SHIFT) & 1],
      state: STATES[(flags >> STATE_SHIFT) & 3],
      kind: flags & SERVICE ? "service" : "human",
      labels,
      emailVerified: (flags & EMAIL_VERIFIED) !== 0,
      passwordChangeRequired: (flags & CHANGE_REQUIRED) !== 0,
      version: this.versions[slot],
      createTime: new Date(this.times[2 * slot]),
      updateTime: new Date(this.times[2 * slot + 1]),
      deleteTime: deleteMs === undefined ? null : new Date(deleteMs),
      tokensValidAfter: validAfterMs === undefined ? null : new Date(validAfterMs),
    };
  }

  /** What the auth check needs: read from the flag byte and the (small) tokens-valid-after map, no string. */
  status(slot: number): UserStatus | null {
    const flags = this.flags[slot];
    if ((flags & KIND) !== PRESENT) return null;
    return {
      role: ROLES[(flags >> ROLE_SHIFT) & 1],
      state: STATES[(flags >> STATE_SHIFT) & 3],
      tokensValidAfterMs: this.validAfter.get(slot) ?? 0,
      passwordChangeRequired: (flags & CHANGE_REQUIRED) !== 0,
    };
  }

  /** Bytes held outside the JS heap (columns, index, text chunks): for the ADR's measurements and tests. */
  externalBytes(): number {
    return this.capacity * (2 + 4 + 16 + 4 + 4 + 4) + this.index.bytes() + this.text.bytes();
  }

  private clearText(slot: number): void {
    if ((this.flags[slot] & KIND) !== PRESENT) return;
    this.text.free(this.textLength[slot]);
    this.textLength[slot] = 0;
    if (this.labelRef[slot] !== 0) this.labelSets.unref(this.labelRef[slot]);
    this.labelRef[slot] = 0;
  }

  /** Moves every live record into fresh chunks (after many rewrites left the old ones mostly garbage). */
  private compactText(): void {
    const fresh = new TextArena();
    for (let s = 0; s < this.count; s++) {
      if ((this.flags[s] & KIND) === PRESENT)
        this.textAt[s] = this.text.moveTo(fresh, this.textAt[s], this.textLength[s]);
    }
    this.text = fresh;
  }

  private grow(): void {
    const capacity = Math.min(this.max, 2 * this.capacity);
    const grown = <T extends Uint16Array | Int32Array | Uint32Array | Float64Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.flags = grown(this.flags, capacity);
    this.versions = grown(this.versions, capacity);
    this.times = grown(this.times, 2 * capacity);
    this.textAt = grown(this.textAt, capacity);
    this.textLength = grown(this.textLength, capacity);
    this.labelRef = grown(this.labelRef, capacity);
    this.index.grow(capacity, this.count, (s) => (this.flags[s] & KIND) !== FREE);
    this.capacity = capacity;
  }
}
