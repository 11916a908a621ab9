/**
 * The SSRF guard of webhook URLs (docs/webhooks.md): the addresses a host name resolves to, and whether any
 * of them is one a service must not be made to call on an admin's behalf: loopback, private (RFC 1918, ULA,
 * CGNAT), link-local (with the cloud metadata address 169.254.169.254), unspecified, multicast, reserved.
 * Node's BlockList does the matching (it also matches IPv4-mapped IPv6 forms against the IPv4 rules).
 * Checked when a webhook is created and again, on the addresses actually connected to, at every delivery.
 */
import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

const blocked = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], // "this network", incl. the unspecified address
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // CGNAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, incl. the metadata service
  ["172.16.0.0", 12],
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.168.0.0", 16],
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, incl. broadcast
] as const)
  blocked.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128],
  ["fc00::", 7], // ULA
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const)
  blocked.addSubnet(net, prefix, "ipv6");

/** True when `address` (an IP literal) is one webhooks may not reach unless WEBHOOK_ALLOW_PRIVATE is set. */
function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** A resolved address, as `dns.lookup` gives it. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** The host of a URL as a name or an IP literal (without the brackets of an IPv6 literal). */
export function hostOf(url: URL): string {
  return url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
}

/** Why a host cannot be called: it does not resolve, or resolves to a blocked address. */
export class AddressRefused extends Error {
  readonly why: "unresolved" | "blocked";
  constructor(why: "unresolved" | "blocked", message: string) {
    super(message);
    this.name = "AddressRefused";
    this.why = why;
  }
}

const LOOKUP_MS = 5000;

/**
 * Every address `host` resolves to (an IP literal is its own), refused when there is none, or when any is
 * blocked and `allowPrivate` is not set: one blocked address among public ones could be the one connected to.
 */
export async function resolveHost(host: string, allowPrivate: boolean): Promise<ResolvedAddress[]> {
  const family = isIP(host);
  let addresses: ResolvedAddress[];
  if (family !== 0) addresses = [{ address: host, family: family as 4 | 6 }];
  else {
    let timer: NodeJS.Timeout | undefined;
    try {
      addresses = (await Promise.race([
        lookup(host, { all: true, verbatim: true }),
        new Promise<never>((_, fail) => {
          timer = setTimeout(() => fail(new Error("timeout")), LOOKUP_MS);
        }),
      ])) as ResolvedAddress[];
    } catch {
      throw new AddressRefused("unresolved", "the host does not resolve");
    } finally {
      clearTimeout(timer);
    }
  }
  if (addresses.length === 0) throw new AddressRefused("unresolved", "the host does not resolve");
  if (!allowPrivate && addresses.some((a) => isBlockedAddress(a.address)))
    throw new AddressRefused(
      "blocked",
      "the host is or resolves to a loopback, private, link-local or otherwise reserved address",
    );
  return addresses;
}
