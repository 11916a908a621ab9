/**
 * `COPY ... FROM STDIN` with the plain `pg` client, without pg-copy-streams: a minimal "submittable" (the
 * hook pg offers for custom protocol flows) that sends the statement, answers CopyInResponse with the
 * data in chunks and resolves on ReadyForQuery.
 */
import type pg from "pg";

interface Connection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/** Runs `sql` (a `COPY ... FROM STDIN`) feeding it `data`; resolves with the row count PostgreSQL reports. */
export function copyFrom(client: pg.Client, sql: string, data: Buffer, chunkBytes = 64 * 1024): Promise<number> {
  return new Promise((resolve, reject) => {
    let error: Error | undefined;
    let rows = 0;
    const submittable = {
      submit(connection: Connection) {
        connection.query(sql);
      },
      handleCopyInResponse(connection: Connection) {
        for (let at = 0; at < data.length; at += chunkBytes)
          connection.sendCopyFromChunk(data.subarray(at, at + chunkBytes));
        connection.endCopyFrom();
      },
      handleCommandComplete(msg: { text: string }) {
        rows = Number(/(\d+)$/.exec(msg.text)?.[1] ?? 0);
      },
      handleError(err: Error) {
        error = err;
      },
      handleReadyForQuery() {
        if (error) reject(error);
        else resolve(rows);
      },
      handleRowDescription() {},
      handleDataRow() {},
      handleEmptyQuery() {},
      handleCopyData() {},
      handlePortalSuspended() {},
    };
    (client as unknown as { query(s: object): void }).query(submittable);
  });
}

/** A value in COPY's text format (tab-separated, \N for null). */
export function copyText(value: string | null): string {
  if (value === null) return "\\N";
  return value.replace(/[\\\t\n\r]/g, (c) => ({ "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" })[c] as string);
}
