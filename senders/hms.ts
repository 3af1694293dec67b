/**
 * Huawei Push Kit sender (os harmony, PROTOCOL.md section 4): OAuth 2.0 client credentials at
 * `${authEndpoint}/oauth2/v3/token`, then `POST ${pushEndpoint}/v1/{appId}/messages:send`. Push Kit answers with
 * a result code in the JSON body ("80000000" success); the HTTP status only matters for 401 and 5xx.
 */
import { fitIds } from './clear-payload.js';
import { withTtlLeft } from './message-ttl.js';
import { fittedText, hmsBody, hmsCountedBytes, type HmsBadge } from './payload.js';
import { AccessTokenCache, exchangeTokenForm, type TokenFetch } from './oauth-token.js';
import type { PushJob, PushOutcome } from './types.js';
import type { HmsCredentials } from './vendor-config.js';
import { networkOutcome, parseJson, retryOutcome, VendorHttp, type VendorClientOptions, type VendorResponse } from './vendor-http.js';
import type { VendorSender } from './vendor.js';

/** Push Kit result codes the sender acts on. */
export const HMS_CODES = {
  success: '80000000',
  partialSuccess: '80100000',
  oauthAuthenticationError: '80200001',
  oauthTokenExpired: '80200003',
  allTokensInvalid: '80300007',
  internalError: '81000001',
} as const;

interface HmsAnswer {
  code?: unknown;
  msg?: unknown;
  requestId?: unknown;
}

export class HmsSender implements VendorSender {
  private readonly http: VendorHttp;
  private readonly now: () => number;
  private readonly tokens: AccessTokenCache;

  constructor(private readonly creds: HmsCredentials, options: VendorClientOptions = {}) {
    this.http = new VendorHttp(options);
    this.now = options.now ?? Date.now;
    this.tokens = new AccessTokenCache(() => this.fetchToken(), this.now);
  }

  /** OAuth token requests so far. */
  get tokenFetches(): number {
    return this.tokens.fetches;
  }

  async send(job: PushJob): Promise<PushOutcome> {
    const body = job.clear ? buildHmsClearBody(job) : buildHmsBody(job, this.creds.badgeClass, this.now());
    if (body === undefined) return { outcome: 'failed', reason: 'hms payload exceeds 4096 bytes even with the text removed' };
    const url = new URL(`${trimSlash(this.creds.pushEndpoint)}/v1/${encodeURIComponent(this.creds.appId)}/messages:send`);
    // An expired or revoked token (HTTP 401, 80200003) gets one fresh token and one resend.
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.get();
      if (!token.ok) return token.outcome;
      let res: VendorResponse;
      try {
        res = await this.http.post(url, body, { authorization: `Bearer ${token.token}`, 'content-type': 'application/json; charset=utf-8' });
      } catch (err) {
        return networkOutcome('hms', err);
      }
      const code = (parseJson(res.body) as HmsAnswer | undefined)?.code;
      const authProblem = res.status === 401 || code === HMS_CODES.oauthTokenExpired || code === HMS_CODES.oauthAuthenticationError;
      if (authProblem && attempt === 0) {
        this.tokens.invalidate(token.token);
        continue;
      }
      const outcome = hmsOutcome(res, job.token, this.now());
      if (!authProblem || outcome.outcome !== 'failed') return outcome;
      // Refused with a fresh access token too: the app's credentials, not this device (logged by the pool).
      const refused: PushOutcome = { ...outcome, config: true };
      this.tokens.refuse(refused);
      return refused;
    }
  }

  async close(): Promise<void> {
    this.http.close();
  }

  private async fetchToken(): Promise<TokenFetch> {
    const url = new URL(`${trimSlash(this.creds.authEndpoint)}/oauth2/v3/token`);
    const form = { grant_type: 'client_credentials', client_id: this.creds.clientId, client_secret: this.creds.clientSecret };
    return exchangeTokenForm(this.http, url, form, 'hms token request', this.now());
  }
}

/**
 * Push Kit keeps a message at most 15 days (server API, `ttl`: "The default value is 86400 (1 day), and the maximum
 * value is 1296000 (15 days)"); a longer TTL (the contract allows 28 days) is sent as this.
 */
export const HMS_MAX_TTL_SECONDS = 1_296_000;

/**
 * The Push Kit v1 body for one token (see `hmsBody`), text shortened so the body fits 4096 bytes as Push Kit counts
 * it, without the token (`hmsCountedBytes`). With `badgeClass` (HmsCredentials) an alert carries `job.badge`, the
 * unread count (section 4), as its launcher badge, but the badge never costs the message any of its text: when the
 * text would have to be cut further to make room for it, the push goes without it. `android.ttl` is what is left at `now` (epoch ms) of the message's TTL, counted from
 * its acceptance (senders/message-ttl.ts).
 */
export function buildHmsBody(job: PushJob, badgeClass?: string, now = Date.now()): string | undefined {
  const left = withTtlLeft(job.message, now);
  const m = left.ttlSeconds !== undefined && left.ttlSeconds > HMS_MAX_TTL_SECONDS ? { ...left, ttlSeconds: HMS_MAX_TTL_SECONDS } : left;
  const silent = job.silent === true;
  const fit = (badge?: HmsBadge): string | undefined => fittedText(m, 'hms', (t) => hmsCountedBytes(m, t, silent, badge));
  const text = fit();
  if (text === undefined) return undefined;
  const badge = badgeClass !== undefined && job.badge !== undefined ? { class: badgeClass, count: job.badge } : undefined;
  return hmsBody(m, text, job.token, silent, badge !== undefined && fit(badge) === text ? badge : undefined);
}

/**
 * android.collapse_key of clear pushes. Push Kit's collapse_key is a cache group, not a string ("1-100: message cache
 * group ID; each group caches only the latest message for each app" while the device is offline, Push Kit server API,
 * AndroidConfig.collapse_key). Alerts never set it (they use the notification tag), so group 100 holds only clears:
 * a newer clear replaces an older one still queued at Huawei.
 */
export const HMS_CLEAR_COLLAPSE_KEY = 100;

/**
 * Section 4 read sync, a silent clear push for Push Kit: a data message (no `android.notification`, so the device
 * shows nothing and the app's onMessageReceived gets it) whose `message.data` is the JSON string
 * `{"type":"clear","ids":[…],"badge":n}`. The badge rides in the data on purpose: Push Kit's own badge field
 * (`android.notification.badge`, BadgeNotification `set_num` with the mandatory entry-activity `class`) exists only
 * on notification messages, which always show something, so the app sets the launcher badge itself from `badge`.
 * Urgency NORMAL: Push Kit reserves HIGH for data messages to apps granted that permission. Ids that do not fit the
 * 4096 bytes Push Kit allows per message body are left out (newest kept); the badge is always exact.
 */
export function buildHmsClearBody(job: PushJob): string | undefined {
  const build = (ids: string[]) => JSON.stringify({
    validate_only: false,
    message: {
      data: JSON.stringify({ type: 'clear', ids, badge: job.badge ?? 0 }),
      android: { urgency: 'NORMAL', collapse_key: HMS_CLEAR_COLLAPSE_KEY, ttl: `${job.message.ttlSeconds ?? 3600}s` },
      token: [job.token],
    },
  });
  return fitIds(job.clear?.ids ?? [], build);
}

/** Maps a messages:send answer for the single `deviceToken` to an outcome. */
export function hmsOutcome(res: VendorResponse, deviceToken: string, now: number): PushOutcome {
  const answer = parseJson(res.body) as HmsAnswer | undefined;
  const code = typeof answer?.code === 'string' ? answer.code : undefined;
  const msg = typeof answer?.msg === 'string' ? answer.msg : res.body.slice(0, 200);
  const reason = `hms ${res.status} ${code ?? 'error'}: ${msg}`;
  if (res.status === 200 && code === HMS_CODES.success) {
    return typeof answer?.requestId === 'string' ? { outcome: 'ok', vendorId: answer.requestId } : { outcome: 'ok' };
  }
  if (code === HMS_CODES.partialSuccess) {
    // msg carries the per-token result: {"success":0,"failure":1,"illegal_tokens":["..."]}. The reason goes into the
    // decision history and the routed events, so it counts the tokens and never lists them.
    const detail = parseJson(msg) as { success?: unknown; failure?: unknown; illegal_tokens?: unknown } | undefined;
    const illegal = Array.isArray(detail?.illegal_tokens) ? detail.illegal_tokens : [];
    const partial = `hms ${res.status} ${code}: ${String(detail?.success ?? '?')} succeeded, ${String(detail?.failure ?? '?')} failed, ${illegal.length} illegal token(s)`;
    if (illegal.includes(deviceToken)) return { outcome: 'dead_token', reason: partial };
    if (typeof detail?.success === 'number' && detail.success > 0) return { outcome: 'ok' };
    return { outcome: 'failed', reason: partial };
  }
  if (code === HMS_CODES.allTokensInvalid) return { outcome: 'dead_token', reason };
  if (res.status === 429 || res.status >= 500 || code === HMS_CODES.internalError) return retryOutcome(reason, res.headers, now);
  return { outcome: 'failed', reason };
}

function trimSlash(origin: string): string {
  return origin.replace(/\/+$/, '');
}
