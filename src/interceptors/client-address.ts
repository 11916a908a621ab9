/**
 * Who is calling, for rate limits and for what sessions record (kClientAddress): the socket's peer, or, when
 * that peer is a trusted proxy (TRUST_PROXY), the address X-Forwarded-For names. The header is read from the right: each proxy appends the address it
 * saw, so the rightmost entries are written by our own proxies and everything left of the first untrusted
 * address is whatever the client chose to send (trusting it would let a client pick a fresh bucket per
 * request). Matching uses node:net's BlockList; the only address arithmetic here is the /64 of an IPv6
 * client, since one IPv6 subscriber routinely holds a whole /64.
 */
import { BlockList, isIP } from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import type { TrustedProxy } from "../config.ts";
import { kClientAddress } from "../rpc/context.ts";

/** Resolves the client address of a call from its TCP peer and its X-Forwarded-For header (if any). */
export type ClientAddressResolver = (peer: string, forwardedFor: string | undefined) => string;

/** The 8 groups of a valid IPv6 address (embedded IPv4 tails included). */
function ipv6Groups(address: string): number[] {
  let a = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number);
    a = `${a.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const zeros = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill("0");
  return [...h, ...zeros, ...t].map((g) => Number.parseInt(g, 16));
}

/**
 * One X-Forwarded-For entry (or a peer address) as a canonical address: IPv4 as is, IPv6 lower-cased,
 * IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as its IPv4 address; a port (`1.2.3.4:80`, `[::1]:80`) and an IPv6
 * zone are dropped. Undefined for anything else (`unknown`, obfuscated identifiers, garbage).
 */
export function parseAddress(raw: string): string | undefined {
  let s = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(s);
  if (bracketed) s = bracketed[1];
  else if (/^[\d.]+:\d{1,5}$/.test(s)) s = s.slice(0, s.lastIndexOf(":"));
  s = s.split("%", 1)[0];
  const family = isIP(s);
  if (family === 4) return s;
  if (family !== 6) return undefined;
  const g = ipv6Groups(s);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff].join(".");
  }
  return s.toLowerCase();
}

/**
 * The rate-limit key of a client address: an IPv4 address itself, an IPv6 address its /64 prefix
 * (`2001:db8:0:1::/64`), so a client cannot mint buckets from the 2^64 addresses it is given.
 */
export function rateLimitKey(address: string): string {
  if (isIP(address) !== 6) return address;
  return `${ipv6Groups(address)
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
}

/**
 * A resolver for the given trusted proxies. X-Forwarded-For counts only when the peer is trusted; it is
 * walked from the right, skipping trusted addresses, and the first untrusted one is the client (all trusted:
 * the leftmost). An entry that is not an address ends the walk, and the last good address is the client:
 * garbage never becomes a key, and nothing left of it is believed.
 */
export function createClientAddress(trusted: readonly TrustedProxy[]): ClientAddressResolver {
  const list = new BlockList();
  for (const p of trusted) list.addSubnet(p.address, p.prefix, p.family);
  const isTrusted = (a: string) => list.check(a, isIP(a) === 6 ? "ipv6" : "ipv4");
  return (peer, forwardedFor) => {
    let client = parseAddress(peer);
    if (client === undefined) return peer;
    if (!forwardedFor || trusted.length === 0 || !isTrusted(client)) return client;
    const entries = forwardedFor.split(",");
    for (let i = entries.length - 1; i >= 0; i--) {
      const a = parseAddress(entries[i]);
      if (a === undefined) break;
      client = a;
      if (!isTrusted(a)) break;
    }
    return client;
  };
}

/**
 * Replaces the TCP peer the transport put in kClientAddress with the client address as the resolver sees it
 * (TRUST_PROXY, X-Forwarded-For, IPv4-mapped IPv6 as IPv4), so handlers record where the client is, not the
 * proxy in front of the service.
 */
export function createClientAddressInterceptor(trusted: readonly TrustedProxy[]): Interceptor {
  const resolve = createClientAddress(trusted);
  return (next) => (req) => {
    const peer = req.contextValues.get(kClientAddress);
    if (peer) req.contextValues.set(kClientAddress, resolve(peer, req.header.get("x-forwarded-for") ?? undefined));
    return next(req);
  };
}
