import { BlockList, isIP, type LookupFunction } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';

/*
 * Where Web Push may go (PROTOCOL.md section 5): only endpoints on the allowed push service hosts, never a loopback
 * or private address. A subscription is data from a client; without this check a client could make the server POST
 * to any URL, its own network included. Pure checks here (the edge reuses `isAllowedPushEndpoint` at registration);
 * `publicOnlyLookup` checks the addresses a host name resolves to when the sender connects.
 */

/**
 * The push services browsers use: FCM (Chrome, Edge on Android), Mozilla autopush (Firefox), Apple (Safari),
 * Windows Push Notification Services (Edge on Windows). SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS replaces this list.
 */
export const DEFAULT_WEBPUSH_ALLOWED_HOSTS: readonly string[] = Object.freeze([
  'fcm.googleapis.com',
  'updates.push.services.mozilla.com',
  'web.push.apple.com',
  '*.notify.windows.com',
]);

/** Error code of a connection refused because the push service host resolved to a non-public address. */
export const PRIVATE_ADDRESS_CODE = 'EPUSHPRIVATEADDRESS';

export type EndpointCheck = { ok: true; url: URL } | { ok: false; reason: string };

/**
 * Whether a Web Push subscription endpoint may be sent to: an https URL without credentials whose host is on
 * `allowedHosts`. Entries are host names (`push.example.com`), `*.`-prefixed for any subdomain
 * (`*.notify.windows.com` matches `db5p.notify.windows.com`, not `notify.windows.com`), or IP addresses. An IP
 * address endpoint is allowed only when that address is listed itself, so loopback and private addresses are
 * reachable only when an operator lists them (a push service on their own network, a test stand-in). A host name
 * must still resolve to public addresses only (`publicOnlyLookup`). Pure: no I/O.
 */
export function isAllowedPushEndpoint(endpoint: string | URL, allowedHosts: readonly string[]): boolean {
  return checkPushEndpoint(endpoint, allowedHosts).ok;
}

/** `isAllowedPushEndpoint` with the reason for a refusal (for error messages and push outcomes). */
export function checkPushEndpoint(endpoint: string | URL, allowedHosts: readonly string[]): EndpointCheck {
  let url: URL;
  try {
    url = typeof endpoint === 'string' ? new URL(endpoint) : endpoint;
  } catch {
    return { ok: false, reason: 'the endpoint is not a URL' };
  }
  if (url.protocol !== 'https:') return { ok: false, reason: 'the endpoint must be an https URL' };
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'the endpoint must not carry credentials' };
  const host = normalizeHost(url.hostname);
  if (host === '') return { ok: false, reason: 'the endpoint has no host' };
  const allowed = isIP(host) !== 0
    ? allowedHosts.some((entry) => normalizeHost(entry) === host)
    : allowedHosts.some((entry) => hostMatches(host, normalizeHost(entry)));
  return allowed ? { ok: true, url } : { ok: false, reason: `${host} is not an allowed push service host (SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS)` };
}

/**
 * Why a SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS entry is not usable, or undefined when it is: a host name (letters,
 * digits, hyphens, dots), the same with a `*.` prefix, or an IPv4/IPv6 address.
 */
export function allowedHostProblem(entry: string): string | undefined {
  const e = normalizeHost(entry);
  if (isIP(e) !== 0) return undefined;
  const name = e.startsWith('*.') ? e.slice(2) : e;
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  if (name.length === 0 || name.length > 253 || !name.split('.').every((l) => label.test(l))) {
    return `"${entry}" is not a host name, a *.-prefixed host name or an IP address`;
  }
  return undefined;
}

// IANA special-purpose ranges (RFC 6890 and successors) plus multicast: never a push service.
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128], ['::1', 128], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001:db8::', 32],
  ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) NON_PUBLIC.addSubnet(net, prefix, 'ipv6');

// Kept apart: in one BlockList an IPv4-mapped subnet would match every IPv4 address too.
const MAPPED = new BlockList();
MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/** True for a globally routable unicast address; false for loopback, private, link-local, reserved, multicast or not an IP. */
export function isPublicAddress(address: string): boolean {
  const a = normalizeHost(address);
  const family = isIP(a);
  if (family === 0) return false;
  if (family === 6 && MAPPED.check(a, 'ipv6')) return false; // an IPv4-mapped address is no push service's
  return !NON_PUBLIC.check(a, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * A `lookup` for the Web Push agent (net.connect option): resolves like dns.lookup, and refuses the connection with
 * PRIVATE_ADDRESS_CODE when any address is not public. The check is on the very addresses the socket connects to,
 * so a host name that resolves differently later (DNS rebinding) cannot slip past a check done earlier.
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad || addresses.length === 0) {
      const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to ${bad?.address ?? 'no address'}: Web Push is never sent to a loopback or private address`);
      e.code = PRIVATE_ADDRESS_CODE;
      return callback(e, []);
    }
    if (options.all) callback(null, addresses);
    else callback(null, addresses[0].address, addresses[0].family);
  });
};

function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  // One spelling per IPv6 address, the one URL gives (::1, not 0:0:0:0:0:0:0:1).
  if (isIP(h) === 6) h = new URL(`https://[${h}]/`).hostname.slice(1, -1);
  return h;
}

function hostMatches(host: string, entry: string): boolean {
  if (entry.startsWith('*.')) return host.endsWith(entry.slice(1)) && host.length > entry.length - 1;
  return host === entry;
}
