import { SwitchboardError } from './errors.js';
import { isObject } from './fields.js';

/**
 * Push token rules of PROTOCOL.md section 3 (`PUT …/devices/{d}` row, and the `register` frame of section 2):
 * - `ios`: an APNs device token, 64-200 hex digits (Apple's tokens are 32 bytes today, longer ones are announced);
 * - `android`, `harmony`: an FCM registration token / Push Kit token, 1-4096 characters of `[A-Za-z0-9_:.-]`;
 * - `web`: a PushSubscription JSON (W3C Push API, `PushSubscription.toJSON()`) with an `https:` `endpoint` and
 *   `keys.p256dh`, `keys.auth` in base64url. Whether the endpoint's host is an allowed push service is the
 *   gateway's check (it knows the configured list), see `webPushEndpoint`.
 * Anything else throws `SwitchboardError('invalid_field')` naming `token`; the token itself is never echoed.
 */
export function checkPushToken(os: string, token: string): void {
  switch (os) {
    case 'ios':
      if (!/^[0-9A-Fa-f]{64,200}$/.test(token)) throw badToken('64-200 hex digits for ios');
      return;
    case 'android':
    case 'harmony':
      if (!/^[A-Za-z0-9_:.-]{1,4096}$/.test(token)) throw badToken(`1-4096 characters of A-Z a-z 0-9 _ : . - for ${os}`);
      return;
    case 'web':
      webPushEndpoint(token);
      return;
    default: // the decoders refuse an unknown os first (MOBILE_OS in protocol/message.ts)
      throw new SwitchboardError('invalid_field', 'os must be one of ios, android, harmony, web');
  }
}

/** The `endpoint` of a Web Push subscription token, checked as `checkPushToken` says; throws `invalid_field`. */
export function webPushEndpoint(token: string): URL {
  let sub: unknown;
  try {
    sub = JSON.parse(token);
  } catch {
    throw badToken('a PushSubscription JSON for web');
  }
  if (!isObject(sub) || typeof sub.endpoint !== 'string') throw badToken('a PushSubscription JSON with an endpoint for web');
  let url: URL;
  try {
    url = new URL(sub.endpoint);
  } catch {
    throw badToken('a PushSubscription whose endpoint is a URL');
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '') {
    throw badToken('a PushSubscription whose endpoint is an https URL without credentials');
  }
  const keys = sub.keys;
  if (!isObject(keys) || !isBase64Url(keys.p256dh) || !isBase64Url(keys.auth)) {
    throw badToken('a PushSubscription whose keys hold p256dh and auth (base64url)');
  }
  return url;
}

function isBase64Url(v: unknown): boolean {
  return typeof v === 'string' && /^[A-Za-z0-9_-]{1,512}={0,2}$/.test(v);
}

function badToken(must: string): SwitchboardError {
  return new SwitchboardError('invalid_field', `token must be ${must}`);
}
