import { randomBytes } from 'node:crypto';
import type { Vendor } from '../../protocol/index.js';
import { apnsAnswers, type ApnsServer, type RecordedApnsRequest } from '../vendors/apns-server.js';
import type { FcmServer } from '../vendors/fcm-server.js';
import type { HmsServer } from '../vendors/hms-server.js';
import type { RecordedRequest } from '../vendors/recording-server.js';
import type { WebPushServer } from '../vendors/webpush-server.js';

/**
 * One face over the four vendor stand-ins, so an end-to-end case ("dead token", "Retry-After honoured", ...) is
 * written once and run per vendor (test/vendors-e2e.int.test.ts). Each rig turns the vendor's own request into a
 * `SeenPush`: when it arrived, how large the body was, and the messageId and text it carried.
 */

export type MobileOs = 'ios' | 'android' | 'harmony' | 'web';

export interface SeenPush {
  /** Arrival at the stand-in, epoch ms. */
  at: number;
  /** Request body size on the wire (Web Push: the encrypted body). */
  bytes: number;
  messageId?: string;
  /** The notification text (alert body) the vendor would show. */
  text?: string;
  /** The status the stand-in answered. */
  answer: unknown;
  headers: Record<string, unknown>;
  /** The vendor body as parsed (Web Push: the decrypted plaintext). */
  body: any;
}

export interface VendorRig {
  vendor: Vendor;
  os: MobileOs;
  /** A device token the stand-in accepts. */
  newToken(): string;
  /** Every push the stand-in received for `token`, oldest first. */
  seen(token: string): SeenPush[];
  /** `token` is dead from now on (app uninstalled / subscription gone). */
  kill(token: string): void;
  /** The next send is throttled with `Retry-After: 1`. */
  throttleOnce(token: string): void;
  /** Every send fails with a 5xx until `healthy`. */
  failing(token: string): void;
  healthy(): void;
  /** What the vendor's dead-token answer looks like in the outcome's reason. */
  deadReason: RegExp;
  /** What the vendor's 5xx answer looks like in the outcome's reason. */
  failReason: RegExp;
}

/** The APNs stand-in records no arrival time; stamp each request as it is recorded. */
function stampArrivals(list: RecordedApnsRequest[]): WeakMap<RecordedApnsRequest, number> {
  const at = new WeakMap<RecordedApnsRequest, number>();
  const push = list.push.bind(list);
  list.push = (...items: RecordedApnsRequest[]) => {
    const now = Date.now();
    for (const item of items) at.set(item, now);
    return push(...items);
  };
  return at;
}

export function apnsRig(server: ApnsServer): VendorRig {
  const at = stampArrivals(server.requests);
  return {
    vendor: 'apns',
    os: 'ios',
    newToken: () => randomBytes(32).toString('hex'),
    seen: (token) => server.requests.filter((r) => r.token === token).map((r) => {
      const body = JSON.parse(r.body || 'null');
      return { at: at.get(r) ?? NaN, bytes: Buffer.byteLength(r.body), messageId: body?.messageId, text: body?.aps?.alert?.body, answer: r.answer, headers: r.headers, body };
    }),
    kill: (token) => server.setBehavior(apnsAnswers.unregistered(), { token }),
    throttleOnce: (token) => server.setBehavior(apnsAnswers.tooManyRequests(1), { token, times: 1 }),
    failing: (token) => server.setBehavior(apnsAnswers.internalServerError(), { token }),
    healthy: () => server.resetBehavior(),
    deadReason: /apns 410 Unregistered/,
    failReason: /apns 500 InternalServerError/,
  };
}

function recorded(r: RecordedRequest, body: any, messageId: string | undefined, text: string | undefined): SeenPush {
  return { at: r.at, bytes: r.raw.length, messageId, text, answer: r.answer, headers: r.headers as Record<string, unknown>, body };
}

export function fcmRig(server: FcmServer): VendorRig {
  return {
    vendor: 'fcm',
    os: 'android',
    newToken: () => `fcm-${randomBytes(16).toString('base64url')}:APA91b${randomBytes(24).toString('base64url')}`,
    seen: (token) => server.sends().filter((r) => (r.parsed as any)?.message?.token === token).map((r) => {
      const m = (r.parsed as any).message;
      return recorded(r, r.parsed, m.data?.messageId, m.notification?.body);
    }),
    kill: (token) => server.unregister(token),
    throttleOnce: () => server.setBehavior({ answer: 'quota_exceeded', retryAfterSeconds: 1, times: 1 }),
    failing: () => server.setBehavior({ answer: 'internal' }),
    healthy: () => server.setBehavior({}),
    deadReason: /fcm 404 UNREGISTERED/,
    failReason: /fcm 500 INTERNAL/,
  };
}

export function hmsRig(server: HmsServer): VendorRig {
  return {
    vendor: 'hms',
    os: 'harmony',
    newToken: () => `IQAAAACy${randomBytes(40).toString('base64url')}`,
    seen: (token) => server.sends().filter((r) => (r.parsed as any)?.message?.token?.includes(token)).map((r) => {
      const m = (r.parsed as any).message;
      const data = JSON.parse(m.data ?? '{}');
      return recorded(r, r.parsed, data.messageId, m.android?.notification?.body);
    }),
    kill: (token) => server.invalidate(token),
    throttleOnce: () => server.setBehavior({ answer: 'flow_control', retryAfterSeconds: 1, times: 1 }),
    failing: () => server.setBehavior({ answer: 'internal' }),
    healthy: () => server.setBehavior({}),
    deadReason: /hms 400 80300007/,
    failReason: /hms 500 81000001/,
  };
}

export function webPushRig(server: WebPushServer): VendorRig {
  const pathOf = (token: string) => new URL((JSON.parse(token) as { endpoint: string }).endpoint).pathname;
  return {
    vendor: 'webpush',
    os: 'web',
    newToken: () => server.subscribe(),
    seen: (token) => server.requests.filter((r) => r.path === pathOf(token)).map((r) => {
      const p = r.parsed as any;
      return recorded(r, p, p?.messageId, p?.body);
    }),
    kill: (token) => server.expire(token),
    throttleOnce: () => server.setBehavior({ answer: 'too_many', retryAfterSeconds: 1, times: 1 }),
    failing: () => server.setBehavior({ answer: 'server_error' }),
    healthy: () => server.setBehavior({}),
    deadReason: /webpush 410/,
    failReason: /webpush 500/,
  };
}
