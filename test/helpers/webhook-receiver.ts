/**
 * A real HTTP endpoint for webhook tests: records every request (headers, raw body) in arrival order and
 * answers with the status `answer` picks (200 unless told otherwise), so tests can make it fail, recover or
 * hang and see exactly what the service sent.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the receiver got. */
export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** webhook-id, for short. */
  id: string;
  time: number;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>/hook`. */
  url: string;
  received: Received[];
  /** Picks the status of the answer to a request (may wait first); 200 by default. */
  answer: (r: Received) => number | Promise<number>;
  /** Resolves once `n` requests (matching `where`, if given) have arrived; rejects after `ms`. */
  waitFor(n: number, where?: (r: Received) => boolean, ms?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const receiver: WebhookReceiver = {
    url: "",
    received: [],
    answer: () => 200,
    async waitFor(n, where = () => true, ms = 10_000) {
      const end = Date.now() + ms;
      for (;;) {
        const got = receiver.received.filter(where);
        if (got.length >= n) return got;
        if (Date.now() > end) throw new Error(`expected ${n} webhook requests, got ${got.length}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const r: Received = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        id: String(req.headers["webhook-id"] ?? ""),
        time: Date.now(),
      };
      receiver.received.push(r);
      const status = await receiver.answer(r);
      res.writeHead(status, { "content-type": "text/plain" });
      res.end("ok");
    });
  });
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}
