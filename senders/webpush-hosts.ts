import { BlockList, isIP, type LookupFunction } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';
import { normalizeHost } from '../protocol/push-endpoint.js';

/*
 * Web Push endpoints (PROTOCOL.md section 5): the pure host rule is on the wire floor (protocol/push-endpoint.ts,
 * re-exported here); this file adds what needs Node: telling public from private addresses, and a `lookup` that
 * checks the addresses a host name resolves to when the sender connects.
 */
export { allowedHostProblem, checkPushEndpoint, DEFAULT_WEBPUSH_HOSTS, isAllowedPushEndpoint, type EndpointCheck } from '../protocol/push-endpoint.js';

/** Error code of a connection refused because the push service host resolved to a non-public address. */
export const PRIVATE_ADDRESS_CODE = 'EPUSHPRIVATEADDRESS';

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

