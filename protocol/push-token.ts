import { SwitchboardError } from './errors.js';
import { isObject } from './fields.js';

/** Longest vendor push token, in UTF-16 code units: FCM and Push Kit tokens (section 3), and a Web Push subscription JSON. */
export const MAX_PUSH_TOKEN_CHARS = 4096;
const IOS_TOKEN = /^[0-9A-Fa-f]{64,200}$/;
const FCM_TOKEN = /^[A-Za-z0-9_:.-]{1,4096}$/;

/**
 * Push token rules of PROTOCOL.md section 3 (`PUT …/devices/{d}` row, and the `register` frame of section 2):
 * - `ios`: an APNs device token, 64-200 hex digits (Apple's tokens are 32 bytes today, longer ones are announced);
 * - `android`, `harmony`: an FCM registration token / Push Kit token, 1-4096 characters of `[A-Za-z0-9_:.-]`;
 * - `web`: a PushSubscription JSON (W3C Push API, `PushSubscription.toJSON()`) in a string (section 4: "the token is
 *   the browser's PushSubscription as a JSON string"), at most MAX_PUSH_TOKEN_CHARS characters, with an `https:`
 *   `endpoint` and `keys.p256dh`, `keys.auth` in base64url. Whether the endpoint's host is an allowed push service is
 *   the gateway's check (it knows the configured list), see `webPushEndpoint`.
 * `token` is the request's value as it came: whatever does not fit (absent, not a string, a subscription sent as a
 * JSON object, empty, too long, a character outside the OS's alphabet) throws `SwitchboardError('invalid_field')`
 * naming `token` (section 3: "else 400 invalid_field"); the token itself is never echoed.
 */
export function checkPushToken(os: string, token: unknown): asserts token is string {
  switch (os) {
    case 'ios':
      if (typeof token !== 'string' || token.length > 200 || !IOS_TOKEN.test(token)) throw badToken('a string of 64-200 hex digits for ios');
      return;
    case 'android':
    case 'harmony':
      if (typeof token !== 'string' || token.length > MAX_PUSH_TOKEN_CHARS || !FCM_TOKEN.test(token)) {
        throw badToken(`a string of 1-${MAX_PUSH_TOKEN_CHARS} characters of A-Z a-z 0-9 _ : . - for ${os}`);
      }
      return;
    case 'web':
      if (typeof token !== 'string') throw badToken('a PushSubscription JSON in a string (JSON.stringify(subscription)) for web');
      if (token.length > MAX_PUSH_TOKEN_CHARS) throw badToken(`a PushSubscription JSON of at most ${MAX_PUSH_TOKEN_CHARS} characters for web`);
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
