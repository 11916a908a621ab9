/**
 * The user cache's strings (./user-cache.columns.ts, docs/adr/0017): UTF-8 bytes in 1 MiB chunks outside the
 * JS heap, addressed by a number (chunk * CHUNK + offset). Chunks are added, never copied, so growing costs
 * no transient second copy (a doubling buffer of 80 MB would need 160 MB while it copies). A record that
 * is replaced leaves garbage; when the garbage passes half the live bytes, the live records are copied into
 * fresh chunks (`compact`).
 */

const CHUNK = 1 << 20;

/** Where the records are. */
export class TextArena {
  private chunks: Buffer[] = [];
  /** Next free byte of the last chunk. */
  private end = CHUNK;
  private live = 0;
  private garbage = 0;

  /** Stores `text` (UTF-8); returns its address, the byte length in `lastLength`. */
  put(text: string): number {
    const max = 3 * text.length;
    if (this.end + max > CHUNK) this.addChunk(max);
    const chunk = this.chunks.length - 1;
    const length = this.chunks[chunk].write(text, this.end, "utf8");
    const addr = chunk * CHUNK + this.end;
    this.end += length;
    this.live += length;
    this.lastLength = length;
    return addr;
  }

  /** Byte length of the record `put` last stored. */
  lastLength = 0;

  /** Reads a record. */
  get(addr: number, length: number): string {
    const offset = addr % CHUNK;
    return this.chunks[(addr - offset) / CHUNK].toString("utf8", offset, offset + length);
  }

  /** A record is no longer used. */
  free(length: number): void {
    this.live -= length;
    this.garbage += length;
  }

  /** True when compacting is worth it (the caller then moves every live record with `moveTo`). */
  wasteful(): boolean {
    return this.garbage > 4 * CHUNK && this.garbage > this.live / 2;
  }

  /** Copies a record into `into` (a fresh arena being filled by compaction); returns its new address. */
  moveTo(into: TextArena, addr: number, length: number): number {
    const offset = addr % CHUNK;
    const from = this.chunks[(addr - offset) / CHUNK];
    if (into.end + length > CHUNK) into.addChunk(length);
    const chunk = into.chunks.length - 1;
    from.copy(into.chunks[chunk], into.end, offset, offset + length);
    const moved = chunk * CHUNK + into.end;
    into.end += length;
    into.live += length;
    return moved;
  }

  /** Bytes held in chunks. */
  bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  private addChunk(atLeast: number): void {
    // A record longer than a chunk (labels can reach ~80 KB) gets a chunk of its own size, rounded up.
    // (It sits at offset 0, so its address still reads as chunk * CHUNK + offset.)
    this.chunks.push(Buffer.allocUnsafeSlow(Math.max(CHUNK, atLeast)));
    this.end = 0;
  }
}
