/**
 * A real HTTP endpoint for webhook tests: records every request (headers, raw body) in arrival order and
 * answers with the status `answer` picks (200 unless told otherwise), so tests can make it fail, recover or
 * hang and see exactly what the service sent.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
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
  /** `http://127.0.0.1:<port>/hook`, or `https://localhost:<port>/hook` with TLS. */
  url: string;
  received: Received[];
  /** Picks the status of the answer to a request (may wait first); 200 by default. */
  answer: (r: Received) => number | Promise<number>;
  /** Resolves once `n` requests (matching `where`, if given) have arrived; rejects after `ms`. */
  waitFor(n: number, where?: (r: Received) => boolean, ms?: number): Promise<Received[]>;
  close(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1; with `tls`, it speaks HTTPS with that key and certificate. */
export async function startWebhookReceiver(
  opts: { tls?: { key: string; cert: string } } = {},
): Promise<WebhookReceiver> {
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
  const handle = (req: IncomingMessage, res: ServerResponse) => {
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
  };
  const server = opts.tls ? createHttpsServer(opts.tls, handle) : createServer(handle);
  await new Promise<void>((ready) => server.listen(0, "127.0.0.1", ready));
  const port = (server.address() as AddressInfo).port;
  receiver.url = opts.tls ? `https://localhost:${port}/hook` : `http://127.0.0.1:${port}/hook`;
  return receiver;
}
