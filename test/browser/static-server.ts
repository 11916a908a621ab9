/**
 * The built console on an origin of its own (another port), served by the same static route the service
 * uses, so a page can be loaded from somewhere other than the service it calls.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createStaticRoute } from "../../src/web/static-route.ts";

/** A running static server. */
export interface StaticServer {
  readonly origin: string;
  close(): Promise<void>;
}

/** Serves web/dist on 127.0.0.1 at a free port. */
export async function startStaticServer(): Promise<StaticServer> {
  const route = createStaticRoute();
  const server = http.createServer(async (req, res) => {
    if (await route(req, res)) return;
    res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
