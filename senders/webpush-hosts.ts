/**
 * Web Push endpoints Switchboard will POST to (PROTOCOL.md section 5): only the push services' own hosts, so a
 * client with a valid JWT cannot aim the server at an arbitrary URL (loopback and private addresses included).
 *
 * The default hosts are the browsers' push services: FCM (Chrome, Edge on Android, Opera: `fcm.googleapis.com`),
 * Mozilla autopush (`updates.push.services.mozilla.com`), Apple (`web.push.apple.com`, `*.push.apple.com`) and
 * Microsoft WNS (`*.notify.windows.com`). SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS replaces the list as given.
 */
export const DEFAULT_WEBPUSH_HOSTS: readonly string[] = Object.freeze([
  'fcm.googleapis.com',
  'updates.push.services.mozilla.com',
  '*.push.apple.com',
  '*.notify.windows.com',
]);

/**
 * True when `endpoint` is an https URL whose host is on `allowedHosts` (exact name, or any subdomain for an entry
 * `*.example.com`), with no credentials (any port). An IP literal or `localhost` only matches an entry
 * that names it exactly: the default list names none, so it never allows a loopback or private address.
 * Resolving the host name (DNS pointing at a private address) is the sender's check at send time.
 */
export function isAllowedPushEndpoint(endpoint: string | URL, allowedHosts: readonly string[] = DEFAULT_WEBPUSH_HOSTS): boolean {
  let url: URL;
  try {
    url = typeof endpoint === 'string' ? new URL(endpoint) : endpoint;
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '') return false;
  const host = url.hostname.toLowerCase();
  return allowedHosts.some((entry) => {
    const e = entry.toLowerCase();
    return e.startsWith('*.') ? host.endsWith(e.slice(1)) && host.length > e.length - 1 : host === e;
  });
}
