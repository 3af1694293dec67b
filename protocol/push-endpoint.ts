/*
 * Where Web Push may go (PROTOCOL.md section 5): only endpoints on the allowed push service hosts, never a loopback
 * or private address. A subscription is data from a client; without this check a client could make the server POST
 * to any URL, its own network included. Pure and on the wire floor, so the edge checks a subscription at
 * registration with the same rule the sender applies before sending (senders/webpush-hosts.ts adds the check of the
 * addresses a host name resolves to).
 */

/**
 * The push services browsers use: FCM (Chrome, Edge on Android, Opera), Mozilla autopush (Firefox), Apple (Safari:
 * `web.push.apple.com`; Apple's "Sending web push notifications in web apps and browsers" asks to allow
 * `*.push.apple.com`), Windows Push Notification Services (Edge on Windows). SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS
 * replaces this list.
 */
export const DEFAULT_WEBPUSH_HOSTS: readonly string[] = Object.freeze([
  'fcm.googleapis.com',
  'updates.push.services.mozilla.com',
  '*.push.apple.com',
  '*.notify.windows.com',
]);

export type EndpointCheck = { ok: true; url: URL } | { ok: false; reason: string };

/**
 * Whether a Web Push subscription endpoint may be sent to: an https URL without credentials whose host is on
 * `allowedHosts`. Entries are host names (`push.example.com`), `*.`-prefixed for any subdomain
 * (`*.notify.windows.com` matches `db5p.notify.windows.com`, not `notify.windows.com`), or IP addresses. An IP
 * address endpoint is allowed only when that address is listed itself, so loopback and private addresses are
 * reachable only when an operator lists them (a push service on their own network, a test stand-in). A host name
 * must still resolve to public addresses only, which the sender checks when it connects. Pure: no I/O.
 */
export function isAllowedPushEndpoint(endpoint: string | URL, allowedHosts: readonly string[] = DEFAULT_WEBPUSH_HOSTS): boolean {
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
  const allowed = ipFamily(host) !== 0
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
  if (ipFamily(e) !== 0) return undefined;
  const name = e.startsWith('*.') ? e.slice(2) : e;
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  if (name.length === 0 || name.length > 253 || !name.split('.').every((l) => label.test(l))) {
    return `"${entry}" is not a host name, a *.-prefixed host name or an IP address`;
  }
  return undefined;
}

export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  // One spelling per IPv6 address, the one URL gives (::1, not 0:0:0:0:0:0:0:1).
  if (ipFamily(h) === 6) h = new URL(`https://[${h}]/`).hostname.slice(1, -1);
  return h;
}

function hostMatches(host: string, entry: string): boolean {
  if (entry.startsWith('*.')) return host.endsWith(entry.slice(1)) && host.length > entry.length - 1;
  return host === entry;
}

/** 4 or 6 for an IPv4 (dotted quad) or IPv6 address, else 0; like net.isIP, without Node. */
export function ipFamily(host: string): 0 | 4 | 6 {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) return v4.slice(1).every((o) => Number(o) <= 255 && (o === '0' || !o.startsWith('0'))) ? 4 : 0;
  if (!host.includes(':') || !/^[0-9a-f:.]+$/i.test(host)) return 0;
  try {
    new URL(`https://[${host}]/`);
    return 6;
  } catch {
    return 0;
  }
}
