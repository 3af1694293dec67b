import { isIP, isIPv6 } from 'node:net';

/**
 * Syntax of the addresses in the configuration (PROTOCOL.md section 1): SWITCHBOARD_HOST and the entries of
 * SWITCHBOARD_NATS_URL. Pure checks, no DNS: a name that is well formed but does not resolve is the network's business
 * (a NATS name may resolve only once its pods are up), a name that cannot be one is refused at start (exit 2).
 */

/**
 * RFC 1123 section 2.1: letters, digits and hyphens, 1-63 characters, neither first nor last a hyphen; and `_`, which
 * that RFC leaves out but resolvers take and container runtimes put in service names (`switchboard_nats_1` of Docker
 * Compose v1), which NATS URLs name.
 */
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * True for an IPv4 address (dotted quad), an IPv6 address (bare or in brackets, `[::1]`) or a DNS host name: labels
 * as RFC 1123 section 2.1 has them (`_` too, see LABEL), at most 253 characters, one trailing dot allowed. A name
 * whose last label is all digits is an IPv4 address or nothing (RFC 3696 section 2: top-level labels are never all-numeric), so `999.1.1.1`
 * and `10.1.1` are refused instead of failing later in getaddrinfo.
 */
export function isHostOrAddress(host: string): boolean {
  if (host.startsWith('[') && host.endsWith(']')) return isIPv6(host.slice(1, -1));
  if (isIP(host) !== 0) return true;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]);
}

/**
 * The credentials part of a SWITCHBOARD_NATS_URL entry: group 1 its scheme (`nats://`, optional), group 2 what comes
 * before the first `@` (`user:password` or a token; an `@` in them is percent-encoded, RFC 3986 section 3.2.1). The
 * one reading of it that the syntax check, `natsUrlCredentials` and `withoutCredentials` share.
 */
export const NATS_URL_CREDENTIALS = /^([a-z][a-z0-9+.-]*:\/\/)?([^@/]*)@/i;

/** natsServerProblem's answer for `ws://` and `wss://`, the one refusal that the value alone does not explain. */
const NATS_WEBSOCKET_PROBLEM = 'ws:// and wss:// are WebSocket URLs, which the Node NATS client does not connect to';

/** Schemes of a SWITCHBOARD_NATS_URL entry that @nats-io/transport-node's `connect` takes (none = `nats://`). */
const NATS_SCHEMES = ['nats', 'tls'];

/**
 * Why one SWITCHBOARD_NATS_URL entry cannot be a NATS server for @nats-io/transport-node 3.x, or undefined when it
 * can. Accepted: `host`, `host:port`, `nats://host:port`, `tls://host:port` (port 1-65535, default 4222), the host a
 * name or address as `isHostOrAddress` has it (IPv6 in brackets when a port follows), an optional `user:password@` or
 * `token@` part (taken out before the client sees the URL: runtime/config.ts `natsUrlCredentials`) and one trailing
 * `/`. Refused, because `connect` refuses them or cannot parse them (nats-core `servers.ts` hostPort, transport-node
 * `connect.ts`) and start-up would retry them until SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS: `ws://`/`wss://` (only the
 * separate `wsconnect` client speaks WebSocket), other schemes, ports out of range, paths, queries, IPv6 zone ids.
 */
export function natsServerProblem(entry: string): string | undefined {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(entry);
  if (scheme) {
    const s = scheme[1].toLowerCase();
    if (s === 'ws' || s === 'wss') return NATS_WEBSOCKET_PROBLEM;
    if (!NATS_SCHEMES.includes(s)) return `${s}:// is not a NATS scheme`;
  }
  const withoutCredentials = entry.replace(NATS_URL_CREDENTIALS, '$1');
  let hostPort = scheme ? withoutCredentials.slice(scheme[0].length) : withoutCredentials;
  if (hostPort.endsWith('/')) hostPort = hostPort.slice(0, -1);
  if (/[/?#\s]/.test(hostPort)) return 'a path, query or space follows the host';
  if (isIPv6(hostPort) && !hostPort.includes('%')) return undefined; // bare IPv6 (`::1`, `nats://::1`), default port
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m) return 'not host:port';
  const [, host, port] = m;
  if (host.includes('%') || !isHostOrAddress(host)) return 'the host is not a host name or IP address';
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return 'the port is not 1-65535';
  return undefined;
}

/**
 * What a vendor endpoint must be, or undefined when `raw` is one: an https:// or http:// URL (a loopback stand-in may
 * speak plain HTTP), https:// only for APNs (`httpsOnly`), whose sender speaks HTTP/2 over TLS only and would fail
 * every push at an http:// origin (senders/apns.ts).
 */
export function vendorEndpointProblem(raw: string, httpsOnly: boolean): string | undefined {
  const must = httpsOnly ? 'an https:// URL' : 'an https:// or http:// URL';
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return must;
  }
  if (u.protocol === 'https:' || (!httpsOnly && u.protocol === 'http:')) return undefined;
  return must;
}
