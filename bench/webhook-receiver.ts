/**
 * A webhook receiver for the outbound bench, in a process of its own so that it takes no CPU from the
 * deliverers it measures: answers 204 to every POST whose Standard Webhooks signature verifies (with the
 * `standardwebhooks` package) and 400 otherwise, and counts per path. `GET /count/<path>` answers
 * `{"received", "firstMs", "lastMs", "bad", "duplicates"}` (instants of the first and last accepted POST, ms)
 * and `DELETE /count/<path>` starts the path's tally afresh.
 *
 * Environment: WEBHOOK_SECRETS, a JSON object of path → `whsec_...` secret (set with PUT /secret/<path>).
 * Prints `listening <port>` once it listens.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

interface Tally {
  received: number;
  firstMs: number;
  bad: number;
  duplicates: number;
  lastMs: number;
  ids: Set<string>;
}

const verifiers = new Map<string, Webhook>();
const tallies = new Map<string, Tally>();
const tally = (path: string) => {
  let t = tallies.get(path);
  if (!t) {
    t = { received: 0, firstMs: 0, bad: 0, duplicates: 0, lastMs: 0, ids: new Set() };
    tallies.set(path, t);
  }
  return t;
};

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const url = req.url ?? "/";
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.method === "PUT" && url.startsWith("/secret/")) {
      verifiers.set(url.slice("/secret".length), new Webhook(body));
      return res.writeHead(204).end();
    }
    if (req.method === "DELETE" && url.startsWith("/count/")) {
      tallies.delete(url.slice("/count".length));
      return res.writeHead(204).end();
    }
    if (req.method === "GET" && url.startsWith("/count/")) {
      const t = tally(url.slice("/count".length));
      const { ids: _ids, ...counts } = t;
      return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(counts));
    }
    const t = tally(url);
    const verifier = verifiers.get(url);
    try {
      if (!verifier) throw new Error("no secret for this path");
      verifier.verify(body, req.headers as Record<string, string>);
    } catch {
      t.bad++;
      return res.writeHead(400).end();
    }
    const id = String(req.headers["webhook-id"]);
    if (t.ids.has(id)) t.duplicates++;
    t.ids.add(id);
    t.received++;
    t.lastMs = performance.timeOrigin + performance.now();
    if (t.received === 1) t.firstMs = t.lastMs;
    res.writeHead(204).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
