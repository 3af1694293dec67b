/**
 * Web Push sender (os web, PROTOCOL.md section 4) on the maintained `web-push` package: it does the RFC 8291
 * aes128gcm encryption and the RFC 8292 VAPID signature. The device token is the browser's PushSubscription as a
 * JSON string. VAPID details go with each send, never into web-push's global state, because one worker can serve
 * several apps.
 */
import { createECDH, createHash } from 'node:crypto';
import https from 'node:https';
import webpush, { type PushSubscription } from 'web-push';
import { fitIds } from './clear-payload.js';
import { ttlLeftSeconds } from './message-ttl.js';
import { fittedText, webPushPayload, WEBPUSH_MAX_PLAINTEXT_BYTES } from './payload.js';
import type { PushJob, PushOutcome } from './types.js';
import type { WebPushCredentials } from './vendor-config.js';
import { DEFAULT_MAX_SOCKETS, DEFAULT_VENDOR_TIMEOUT_MS, networkOutcome, retryOutcome, type VendorClientOptions } from './vendor-http.js';
import type { VendorSender } from './vendor.js';
import { checkPushEndpoint, DEFAULT_WEBPUSH_HOSTS, PRIVATE_ADDRESS_CODE, publicOnlyLookup } from './webpush-hosts.js';

export interface WebPushSenderOptions extends VendorClientOptions {
  /** Push service hosts endpoints may be on (SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS). Default DEFAULT_WEBPUSH_HOSTS. */
  allowedHosts?: readonly string[];
}

export { WEBPUSH_MAX_PLAINTEXT_BYTES };
/** TTL sent when the message has none: four weeks, web-push's own default, stated here so it is visible. */
export const DEFAULT_WEBPUSH_TTL_SECONDS = 28 * 24 * 3600;

export class WebPushSender implements VendorSender {
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly allowedHosts: readonly string[];
  private vapidProblem?: string | null;

  constructor(private readonly creds: WebPushCredentials, options: WebPushSenderOptions = {}) {
    this.allowedHosts = options.allowedHosts ?? DEFAULT_WEBPUSH_HOSTS;
    // One keep-alive agent for every push service this sender reaches (web-push would otherwise open a socket per send).
    // Its lookup refuses host names that resolve to loopback or private addresses (section 5).
    this.agent = new https.Agent({
      keepAlive: true, maxSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS, lookup: publicOnlyLookup, ...(options.ca ? { ca: options.ca } : {}),
    });
    this.timeoutMs = options.timeoutMs ?? DEFAULT_VENDOR_TIMEOUT_MS;
    this.now = options.now ?? Date.now;
  }

  async send(job: PushJob): Promise<PushOutcome> {
    const vapidProblem = this.checkVapid();
    if (vapidProblem) return { outcome: 'failed', reason: vapidProblem };
    const subscription = parseSubscription(job.token);
    if (!subscription) return { outcome: 'failed', reason: 'invalid subscription' };
    const where = checkPushEndpoint(subscription.endpoint, this.allowedHosts);
    if (!where.ok) return { outcome: 'failed', reason: `webpush endpoint refused: ${where.reason}` };
    if (job.clear && isApplePushService(subscription.endpoint)) return { outcome: 'failed', reason: APPLE_NO_CLEAR_REASON };
    const payload = job.clear ? buildWebPushClearPayload(job) : buildWebPushPayload(job);
    if (payload === undefined) return { outcome: 'failed', reason: `webpush payload exceeds ${WEBPUSH_MAX_PLAINTEXT_BYTES} bytes even with the text removed` };
    try {
      const res = await webpush.sendNotification(subscription, payload, {
        vapidDetails: { subject: this.creds.subject, publicKey: this.creds.vapidPublicKey, privateKey: this.creds.vapidPrivateKey },
        contentEncoding: 'aes128gcm',
        ...(job.clear ? webPushClearHeaders(job) : webPushHeaders(job, this.now())),
        agent: this.agent,
        timeout: this.timeoutMs,
      });
      const location = res.headers?.location;
      return typeof location === 'string' ? { outcome: 'ok', vendorId: location } : { outcome: 'ok' };
    } catch (err) {
      if (err instanceof webpush.WebPushError) return webPushOutcome(err.statusCode, err.headers, err.body, this.now());
      if ((err as NodeJS.ErrnoException)?.code === PRIVATE_ADDRESS_CODE) return { outcome: 'failed', reason: `webpush endpoint refused: ${(err as Error).message}` };
      // The subscription and VAPID keys were checked above, so anything else is the network (reset, refused, timeout).
      return networkOutcome('webpush', err);
    }
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** Validates the VAPID keys once (`vapidProblem`); a bad key fails every send with the reason. */
  private checkVapid(): string | null {
    if (this.vapidProblem === undefined) {
      const problem = vapidProblem(this.creds);
      this.vapidProblem = problem === undefined ? null : `webpush VAPID configuration is invalid: ${problem}`;
    }
    return this.vapidProblem;
  }
}

/**
 * Why these VAPID details cannot sign (RFC 8292), or undefined: web-push's own checks (subject a `mailto:` or https
 * URL, the public key 65 and the private key 32 bytes of URL-safe base64), then that the public key is the private
 * key's (P-256; push services answer 403 to a pair that does not match). Start-up refuses such credentials
 * (runtime/config-files.ts); the message never quotes a key.
 */
export function vapidProblem(creds: WebPushCredentials): string | undefined {
  try {
    webpush.getVapidHeaders('https://push.example', creds.subject, creds.vapidPublicKey, creds.vapidPrivateKey, 'aes128gcm');
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(creds.vapidPrivateKey, 'base64url'));
    if (!ecdh.getPublicKey().equals(Buffer.from(creds.vapidPublicKey, 'base64url'))) return 'the VAPID public key is not the private key\'s';
  } catch {
    return 'the VAPID private key is not a P-256 private key';
  }
  return undefined;
}

/** The PushSubscription JSON a browser produced, or undefined when it is not one web-push can encrypt to. */
export function parseSubscription(token: string): PushSubscription | undefined {
  let sub: { endpoint?: unknown; keys?: { p256dh?: unknown; auth?: unknown } };
  try {
    sub = JSON.parse(token) as typeof sub;
  } catch {
    return undefined;
  }
  if (typeof sub?.endpoint !== 'string' || typeof sub.keys?.p256dh !== 'string' || typeof sub.keys.auth !== 'string') return undefined;
  let url: URL;
  try {
    url = new URL(sub.endpoint);
  } catch {
    return undefined;
  }
  // RFC 8291: the browser's key is an uncompressed P-256 point (65 bytes), its auth secret 16 bytes.
  if (url.protocol !== 'https:' || b64urlLength(sub.keys.p256dh) !== 65 || b64urlLength(sub.keys.auth) !== 16) return undefined;
  return { endpoint: sub.endpoint, keys: { p256dh: sub.keys.p256dh, auth: sub.keys.auth } };
}

/**
 * The plaintext the service worker receives (see `webPushPayload`), text shortened to fit, with `badge`: the user's
 * unread count, the badge of an alert push (section 4; the service worker gives it to `navigator.setAppBadge`). As on
 * Push Kit, the badge never costs the message any of its text: without room for both, the push goes without it.
 */
export function buildWebPushPayload(job: PushJob): string | undefined {
  const silent = job.silent === true;
  const build = (t: string, badge?: number) => withBadge(webPushPayload(job.message, t, silent), badge);
  const fit = (badge?: number) => fittedText(job.message, 'webpush', (t) => Buffer.byteLength(build(t, badge)));
  const text = fit();
  if (text === undefined) return undefined;
  return build(text, job.badge !== undefined && fit(job.badge) === text ? job.badge : undefined);
}

/** `payload` (a JSON object's text) with a last `badge` key. */
function withBadge(payload: string, badge?: number): string {
  return badge === undefined ? payload : `${payload.slice(0, -1)},"badge":${badge}}`;
}

/**
 * TTL, Urgency and Topic of an alert push (RFC 8030 sections 5.2-5.4), as web-push options. TTL is what is left at
 * `now` (epoch ms) of the message's TTL, counted from its acceptance (senders/message-ttl.ts).
 */
export function webPushHeaders(job: PushJob, now: number): { TTL: number; urgency: 'normal' | 'high'; topic?: string } {
  const m = job.message;
  return {
    TTL: ttlLeftSeconds(m, now) ?? DEFAULT_WEBPUSH_TTL_SECONDS,
    urgency: m.priority === 'normal' ? 'normal' : 'high',
    ...(m.collapseKey !== undefined ? { topic: webPushTopic(m.collapseKey) } : {}),
  };
}

/** Topic of clear pushes: the push service keeps only the newest clear while the browser is offline (RFC 8030 5.4). */
export const WEBPUSH_CLEAR_TOPIC = 'switchboard-clear';

/**
 * Headers of a clear push (section 4 read sync): `Topic: switchboard-clear` ("a push message that has been stored
 * by the push service can be replaced with new content" with the same topic, RFC 8030 section 5.4) and `Urgency:
 * low` (section 5.3: for a device "on either power or Wi-Fi"; a clear never needs to wake one on battery and
 * cellular), TTL that of the clear (one hour).
 */
export function webPushClearHeaders(job: PushJob): { TTL: number; urgency: 'low'; topic: string } {
  return { TTL: job.message.ttlSeconds ?? 3600, urgency: 'low', topic: WEBPUSH_CLEAR_TOPIC };
}

/**
 * The plaintext of a clear push, `{"type":"clear","ids":[…],"badge":n}`: the service worker closes the
 * notifications whose tag (or data.messageId) is among `ids` (README, push guide). Ids that do not fit the
 * plaintext limit are left out (newest kept); the badge is always exact.
 */
export function buildWebPushClearPayload(job: PushJob): string | undefined {
  return fitIds(job.clear?.ids ?? [], (ids) => JSON.stringify({ type: 'clear', ids, badge: job.badge ?? 0 }), WEBPUSH_MAX_PLAINTEXT_BYTES);
}

/**
 * Why Safari subscriptions get no clear push: Apple, "Sending web push notifications in web apps and browsers":
 * Safari does not support invisible push notifications, and a push that shows none makes Safari revoke the site's
 * push permission. Apple's push service is web.push.apple.com.
 */
export const APPLE_NO_CLEAR_REASON = 'webpush clear not sent: Safari (web.push.apple.com) revokes the permission of sites whose pushes show no notification';

function isApplePushService(endpoint: string): boolean {
  const host = new URL(endpoint).hostname.toLowerCase();
  return host === 'push.apple.com' || host.endsWith('.push.apple.com');
}

/** RFC 8030 topics are at most 32 base64url characters; longer or other keys are hashed (same key, same topic). */
export function webPushTopic(collapseKey: string): string {
  if (/^[A-Za-z0-9_-]{1,32}$/.test(collapseKey)) return collapseKey;
  return createHash('sha256').update(collapseKey).digest('base64url').slice(0, 32);
}

/** Maps a push service's error answer (RFC 8030 section 8, plus what FCM, Mozilla and Apple answer). */
export function webPushOutcome(status: number, headers: Record<string, string | string[] | undefined>, body: string, now: number): PushOutcome {
  const reason = `webpush ${status}${body ? `: ${body.slice(0, 200)}` : ''}`;
  if (status === 404 || status === 410) return { outcome: 'dead_token', reason };
  if (status === 429 || status >= 500) return retryOutcome(reason, headers, now);
  return { outcome: 'failed', reason };
}

function b64urlLength(s: string): number {
  return /^[A-Za-z0-9_+/-]+={0,2}$/.test(s) ? Buffer.from(s, 'base64url').length : -1;
}
