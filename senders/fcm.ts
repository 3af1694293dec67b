/**
 * FCM HTTP v1 sender (PROTOCOL.md sections 1, 4, 5), written as a direct client instead of using firebase-admin.
 * firebase-admin 14 needs Node 22. Version 13 can't send its service-account token exchange or its HTTP/2 sends
 * anywhere except Google, so it can't follow SWITCHBOARD_FCM_ENDPOINT. This client builds the
 * service-account assertion itself and speaks the documented wire protocol. The same code works against Google
 * and against a local server (test/vendors/fcm-server.ts).
 */
import { fcmData, fcmNotification, fittedText } from './payload.js';
import { AccessTokenCache, exchangeTokenForm, type TokenFetch } from './oauth-token.js';
import { readServiceAccount, serviceAccountAssertion, type ServiceAccount } from './oauth-service-account.js';
import type { PushJob, PushOutcome } from './types.js';
import type { FcmCredentials } from './vendor-config.js';
import { networkOutcome, parseJson, retryOutcome, VendorHttp, type VendorClientOptions, type VendorResponse } from './vendor-http.js';
import type { VendorSender } from './vendor.js';
import { fitIds } from './clear-payload.js';
import { withTtlLeft } from './message-ttl.js';

/** Where sends go unless `FcmCredentials.endpoint` (SWITCHBOARD_FCM_ENDPOINT) overrides it. */
export const FCM_ORIGIN = 'https://fcm.googleapis.com';

type AccountLoad = { ok: true; account: ServiceAccount } | { ok: false; reason: string };

export class FcmSender implements VendorSender {
  private readonly http: VendorHttp;
  private readonly now: () => number;
  private readonly tokens: AccessTokenCache;
  private account?: Promise<AccountLoad>;

  constructor(private readonly creds: FcmCredentials, options: VendorClientOptions = {}) {
    this.http = new VendorHttp(options);
    this.now = options.now ?? Date.now;
    this.tokens = new AccessTokenCache(() => this.exchangeToken(), this.now);
  }

  /** OAuth token exchanges so far (one per hour in steady state). */
  get tokenFetches(): number {
    return this.tokens.fetches;
  }

  async send(job: PushJob): Promise<PushOutcome> {
    const loaded = await this.loadAccount();
    if (!loaded.ok) return { outcome: 'failed', reason: loaded.reason };
    const body = job.clear ? buildFcmClearBody(job) : buildFcmBody(job, this.now());
    if (body === undefined) return { outcome: 'failed', reason: 'fcm payload exceeds 4096 bytes even with the text removed' };
    const url = new URL(`${this.origin()}/v1/projects/${encodeURIComponent(loaded.account.projectId)}/messages:send`);
    // A 401 means the cached token was revoked or expired early: fetch a fresh one and resend, once.
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.get();
      if (!token.ok) return token.outcome;
      let res: VendorResponse;
      try {
        res = await this.http.post(url, body, { authorization: `Bearer ${token.token}`, 'content-type': 'application/json; charset=utf-8' });
      } catch (err) {
        return networkOutcome('fcm', err);
      }
      if (res.status === 401 && attempt === 0) {
        this.tokens.invalidate(token.token);
        continue;
      }
      const outcome = fcmOutcome(res, this.now());
      if (res.status !== 401 || outcome.outcome !== 'failed') return outcome;
      // FCM refused a fresh access token too (401 UNAUTHENTICATED): the service account is not allowed to send for
      // this project, whatever the device; a configuration error (logged by the pool), as APNs InvalidProviderToken.
      const refused: PushOutcome = { ...outcome, config: true };
      this.tokens.refuse(refused);
      return refused;
    }
  }

  async close(): Promise<void> {
    this.http.close();
  }

  private origin(): string {
    return (this.creds.endpoint ?? FCM_ORIGIN).replace(/\/+$/, '');
  }

  private loadAccount(): Promise<AccountLoad> {
    this.account ??= readServiceAccount(this.creds.serviceAccountFile);
    return this.account;
  }

  /** Exchanges a fresh service-account assertion for an access token (RFC 7523 jwt-bearer grant). */
  private async exchangeToken(): Promise<TokenFetch> {
    const loaded = await this.loadAccount();
    if (!loaded.ok) return { ok: false, outcome: { outcome: 'failed', reason: loaded.reason } };
    const url = new URL(this.creds.endpoint ? `${this.origin()}/token` : loaded.account.tokenUri);
    const form = { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: serviceAccountAssertion(loaded.account, this.now()) };
    return exchangeTokenForm(this.http, url, form, 'fcm token exchange', this.now());
  }
}

/**
 * The v1 request body (section 5), text shortened so the notification and data fit FCM's 4096 bytes. Our
 * `messageId` and `sender` override same-named keys of the chat server's data (the edge refuses those keys). The
 * sender goes in `sender`: FCM reserves `from` and answers 400 INVALID_ARGUMENT. `android.ttl` is what is left at `now`
 * (epoch ms) of the message's TTL, counted from its acceptance (senders/message-ttl.ts).
 */
export function buildFcmBody(job: PushJob, now = Date.now()): string | undefined {
  const m = withTtlLeft(job.message, now);
  const text = fittedText(m, 'fcm');
  if (text === undefined) return undefined;
  const android: Record<string, unknown> = { priority: m.priority ?? 'high' };
  const notification = fcmNotification(m, text);
  // Quiet hours: AndroidNotification.notification_priority PRIORITY_MIN, "might not be shown to the user except under
  // special circumstances" and never alerting; no `sound` is set. Android 8+ uses the channel's importance instead
  // (FCM v1 reference, AndroidNotification / NotificationPriority), so apps should post it to a silent channel too.
  // Only on a notification: an android.notification would turn a data message (no title, no text) into a notification
  // message, which the system tray takes instead of the app's onMessageReceived ("Message types", FCM docs).
  if (job.silent && notification !== undefined) android.notification = { notification_priority: 'PRIORITY_MIN', default_sound: false };
  if (m.collapseKey !== undefined) android.collapse_key = m.collapseKey;
  if (m.ttlSeconds !== undefined) android.ttl = `${m.ttlSeconds}s`;
  const message: Record<string, unknown> = { token: job.token };
  if (notification !== undefined) message.notification = notification;
  message.data = fcmData(m);
  const badge = fcmBadge(job);
  // The badge sits in android.notification, which FCM does not count against the 4096 bytes (notification + data).
  message.android = badge ? { ...android, notification: { ...(android.notification as object | undefined), ...badge } } : android;
  return JSON.stringify({ message });
}

/** android.collapse_key of clear pushes: FCM keeps only the newest clear while the phone is offline. */
export const FCM_CLEAR_COLLAPSE_KEY = 'switchboard-clear';

/**
 * Section 4 read sync, a silent clear push: a data-only message (no `notification`, so Android shows nothing and
 * the app's onMessageReceived runs) `{"type":"clear","ids":"[…]","badge":"n"}`; FCM data values are strings, so
 * `ids` is a JSON array in a string. Normal priority: Google deprioritizes high-priority messages that show nothing.
 */
export function buildFcmClearBody(job: PushJob): string | undefined {
  const build = (ids: string[]) => JSON.stringify({
    message: {
      token: job.token,
      data: { type: 'clear', ids: JSON.stringify(ids), badge: String(job.badge ?? 0) },
      android: { priority: 'normal', collapse_key: FCM_CLEAR_COLLAPSE_KEY, ttl: `${job.message.ttlSeconds ?? 3600}s` },
    },
  });
  return fitIds(job.clear?.ids ?? [], build);
}

/** Section 4: the unread count as the launcher badge of an alert (AndroidNotification.notification_count). */
function fcmBadge(job: PushJob): { notification_count: number } | undefined {
  if (job.badge === undefined || (job.message.title === undefined && job.message.text === undefined)) return undefined;
  return { notification_count: job.badge };
}

interface FcmErrorBody {
  error?: { code?: number; message?: string; status?: string; details?: { '@type'?: string; errorCode?: string }[] };
}

/** Maps a v1 answer to an outcome (error codes: firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode). */
export function fcmOutcome(res: VendorResponse, now: number): PushOutcome {
  if (res.status >= 200 && res.status < 300) {
    const name = (parseJson(res.body) as { name?: unknown } | undefined)?.name;
    return typeof name === 'string' ? { outcome: 'ok', vendorId: name } : { outcome: 'ok' };
  }
  const error = (parseJson(res.body) as FcmErrorBody | undefined)?.error;
  const errorCode = error?.details?.find((d) => d['@type']?.endsWith('google.firebase.fcm.v1.FcmError'))?.errorCode;
  const message = error?.message ?? res.body.slice(0, 200);
  const reason = `fcm ${res.status} ${errorCode ?? error?.status ?? 'error'}: ${message}`;
  if (errorCode === 'UNREGISTERED') return { outcome: 'dead_token', reason };
  if (res.status === 400 && /not a valid FCM registration token/i.test(message)) return { outcome: 'dead_token', reason };
  if (res.status === 429 || res.status >= 500) return retryOutcome(reason, res.headers, now);
  return { outcome: 'failed', reason };
}
