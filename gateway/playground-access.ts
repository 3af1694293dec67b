import { isIP } from 'node:net';

/** SWITCHBOARD_PLAYGROUND: `on`, `off`, or `auto` (on only while the listener is on a loopback address). */
export type PlaygroundMode = 'on' | 'off' | 'auto';
export const PLAYGROUND_MODES: readonly PlaygroundMode[] = ['on', 'off', 'auto'];
export const DEFAULT_PLAYGROUND_MODE: PlaygroundMode = 'auto';

/**
 * Whether `/playground` is served on a listener bound to `host` (issue 12): `auto` serves it only on a loopback
 * listener (127.0.0.0/8, ::1, localhost), which nothing off this machine can reach.
 */
export function playgroundEnabled(mode: PlaygroundMode, host: string): boolean {
  if (mode !== 'auto') return mode === 'on';
  return host.toLowerCase() === 'localhost' || isLoopbackAddress(host);
}

/**
 * True for an IPv4 loopback address (127.0.0.0/8), IPv6 `::1`, and IPv4-mapped loopback (`::ffff:127.x.y.z`).
 * Used on the socket's remote address, never on headers a client can write.
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const kind = isIP(a);
  if (kind === 4) return a.startsWith('127.');
  if (kind !== 6) return false;
  const lower = a.toLowerCase();
  if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower) ?? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped !== null && mapped[1].startsWith('127.');
}

/**
 * A Host header naming this machine (localhost or a loopback address, any port). The playground API also checks it
 * so that a web page that rebinds its own DNS name to 127.0.0.1 cannot call it from the operator's browser.
 */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d{1,5})?$/.exec(host.trim());
  if (!m) return false;
  const name = m[1].toLowerCase();
  return name === 'localhost' || isLoopbackAddress(name);
}

/**
 * Whether a request's `Origin` header allows a playground call: absent (curl, scripts, same-origin GETs), or the very
 * origin the request was sent to (its Host header: the playground page itself, on whichever loopback name and port it
 * was opened). A browser sends `Origin` on every cross-origin POST, also `no-cors` ones without a Content-Type, which
 * need no CORS preflight and would otherwise let any page open in the operator's browser make the playground send,
 * another local app's or dev server's page on another port included (the Host check stops DNS rebinding, not this).
 * `null` (sandboxed frames, `file:` pages) is refused.
 */
export function isSameOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/** The playground's users: `playground` or `playground-<suffix>`, so its tokens and sends never reach real users. */
export const PLAYGROUND_USER = /^playground(?:-[A-Za-z0-9_.-]{1,64})?$/;
