/**
 * One hostile HTTP/2 connection against the real server process (the bundle, as `npm start` runs it): 1,000
 * gRPC streams to a unary method, each sending most of a 4 MiB message and never ending. The server refuses
 * the streams beyond H2_MAX_CONCURRENT_STREAMS, buffers at most ~16 MiB of unfinished bodies per connection
 * (then flow control holds the client back), so its resident memory grows by far less than the ~4 GB the
 * flood sends, and another client's GetUser on its own connection still answers at once.
 * (docs/adr/0012-listener-limits.md has the numbers before and after.)
 */
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import { afterEach, expect, it } from "vitest";
import { UserService } from "../../gen/user/v1/user_service_pb.js";
import { clients } from "../helpers/clients.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { killProcesses, startProcess } from "../helpers/process.ts";
import { ADMIN } from "../helpers/server.ts";

afterEach(killProcesses);

/** Resident memory of a process, in bytes (Linux). */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) * 1024;
}

/** What a flood did: how many of its streams the server refused (REFUSED_STREAM) and the connection. */
interface Flood {
  refused(): number;
  close(): void;
}

/**
 * Opens `streams` gRPC streams on one connection at once (before the server's SETTINGS can arrive, so the
 * client does not hold itself back), each announcing a message just under 4 MiB and sending it but the last
 * byte: no body ever completes.
 */
function flood(url: string, path: string, streams: number): Flood {
  const session = http2.connect(url, { peerMaxConcurrentStreams: 100_000 });
  session.on("error", () => {});
  const length = 4 * 1024 * 1024 - 16;
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 1);
  const chunk = Buffer.alloc(256 * 1024, 0x41);
  let refused = 0;
  for (let i = 0; i < streams; i++) {
    const s = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    s.on("error", () => {});
    s.on("close", () => {
      if (s.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) refused++;
    });
    s.write(head);
    for (let sent = 0; sent + chunk.length < length; sent += chunk.length) s.write(chunk);
  }
  return { refused: () => refused, close: () => session.destroy() };
}

it("a 1,000-stream flood on one connection grows the server by < 100 MB; GetUser elsewhere answers < 2 s", async () => {
  const { child, url } = await startProcess({ DATABASE_URL: await createTestDatabase() });
  const pid = child.pid as number;
  const token = (await clients(url, "grpc").auth.login(ADMIN)).tokens?.accessToken ?? "";
  const me = (await clients(url, "grpc", () => token).auth.getCurrentUser({})).user?.id ?? "";
  const other = clients(url, "grpc", () => token);
  await other.users.getUser({ userId: me });
  await new Promise((r) => setTimeout(r, 500));
  const before = rss(pid);

  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss(pid));
  }, 50);
  const attack = flood(url, `/${UserService.typeName}/GetUser`, 1000);
  await new Promise((r) => setTimeout(r, 1500));
  // Another client, on a connection of its own, while the flood is on.
  const started = Date.now();
  const answer = await other.users.getUser({ userId: me });
  const took = Date.now() - started;
  await new Promise((r) => setTimeout(r, 1500));
  clearInterval(sampler);
  peak = Math.max(peak, rss(pid));
  const refused = attack.refused();
  attack.close();

  const growthMb = (peak - before) / 1024 / 1024;
  console.log(
    `flood of 1000 streams: RSS ${Math.round(before / 1048576)} -> ${Math.round(peak / 1048576)} MB (+${growthMb.toFixed(1)} MB), ${refused} refused, GetUser ${took} ms`,
  );
  expect(answer.user?.id).toBe(me);
  expect(took).toBeLessThan(2000);
  expect(growthMb).toBeLessThan(100);
  // H2_MAX_CONCURRENT_STREAMS (100 by default): the streams beyond it are refused, not served.
  expect(refused).toBeGreaterThanOrEqual(900);
}, 60_000);
