import { createHash, randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { ChatMessage } from '../protocol/index.js';
import { ApnsConnectionPool, type ApnsExchange } from './apns-connections.js';
import { ProviderToken } from './apns-token.js';
import { apnsPayload, fittedText } from './payload.js';
import { fitIds } from './clear-payload.js';
import { ttlEndSeconds } from './message-ttl.js';
import type { PushJob, PushOutcome } from './types.js';
import type { ApnsCredentials } from './vendor-config.js';
import type { VendorSender } from './vendor.js';
import { TokenSlot } from './apns-token-slot.js';

/*
 * Built on node:http2 rather than @parse/node-apn 8.1: that client never surfaces Retry-After (it reads
 * headers['Retry-After'], which Node lowercases, then deletes it), retries 429/5xx itself with no delay
 * (the pool owns retries), refreshes only on ExpiredProviderToken, and puts no cap on streams per connection.
 */

export interface ApnsSenderOptions {
  /** Trust anchors (PEM) replacing Node's for the endpoint. Default: unset, i.e. Node's CAs + NODE_EXTRA_CA_CERTS. */
  ca?: string | Buffer;
  /** HTTP/2 connections per sender at most. Default 2. */
  maxConnections?: number;
  /** Requests in flight per connection at most (Apple advertises 1000 streams). Default 1000. */
  maxStreamsPerConnection?: number;
  /** Time for a complete answer before the push counts as `retry`. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** Ping interval for open connections, 0 = off. Default 60000 ms. */
  pingIntervalMs?: number;
  /** Clock (epoch ms) for apns-expiration and token age. Default Date.now. */
  now?: () => number;
  /** Age at which the provider token is signed again, 20-59 minutes. Default DEFAULT_TOKEN_REFRESH_MS (50 min). */
  tokenRefreshMs?: number;
}

export const DEFAULT_APNS_MAX_CONNECTIONS = 2;
export const DEFAULT_APNS_MAX_STREAMS = 1000;
export const DEFAULT_APNS_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_APNS_PING_INTERVAL_MS = 60_000;
/** APNs rejects a longer apns-collapse-id. */
const MAX_COLLAPSE_ID_BYTES = 64;

/**
 * 400 reasons that mean the token itself is dead (section 5: "APNs 410 or 400 BadDeviceToken"). Not
 * DeviceTokenNotForTopic ("the device token doesn't match the specified topic", Apple's "Handling notification
 * responses from APNs"): that is a token of another app or build, or a wrong SWITCHBOARD_APNS_TOPIC, and taking it for
 * dead would delete every iOS token of the app at the first push after a topic typo.
 */
const DEAD_TOKEN_400 = new Set(['BadDeviceToken']);


/** APNs over HTTP/2 with token (ES256 JWT) authentication (PROTOCOL.md section 5). */
export class ApnsSender implements VendorSender {
  private readonly now: () => number;
  private readonly origin: string | undefined;
  private readonly pool: ApnsConnectionPool | undefined;
  private readonly setupError: string | undefined;
  private token: ProviderToken | undefined;
  private readonly tokenRefreshMs: number | undefined;

  constructor(private readonly creds: ApnsCredentials, options: ApnsSenderOptions = {}) {
    this.now = options.now ?? Date.now;
    this.tokenRefreshMs = options.tokenRefreshMs;
    // Never throws: a bad endpoint becomes a `failed` reason per push rather than a crashed worker batch.
    try {
      const url = new URL(creds.endpoint);
      if (url.protocol !== 'https:') throw new Error('must be https');
      this.origin = url.origin;
    } catch (err) {
      this.setupError = `invalid APNs endpoint "${creds.endpoint}": ${(err as Error).message}`;
    }
    if (this.origin) {
      this.pool = new ApnsConnectionPool({
        origin: this.origin,
        ca: options.ca,
        maxConnections: options.maxConnections ?? DEFAULT_APNS_MAX_CONNECTIONS,
        maxStreamsPerConnection: options.maxStreamsPerConnection ?? DEFAULT_APNS_MAX_STREAMS,
        requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_APNS_REQUEST_TIMEOUT_MS,
        pingIntervalMs: options.pingIntervalMs ?? DEFAULT_APNS_PING_INTERVAL_MS,
      });
    }
  }

  async send(job: PushJob): Promise<PushOutcome> {
    if (!this.pool) return { outcome: 'failed', reason: this.setupError! };
    const body = job.clear ? apnsClearBody(job) : apnsBody(job.message, job.silent === true, job.badge);
    if (!body) return { outcome: 'failed', reason: 'apns payload exceeds 4096 bytes even with the text left out (title or data too large)' };
    let token: ProviderToken;
    try {
      token = this.token ??= ProviderToken.load(this.creds.keyFile, this.creds.keyId, this.creds.teamId, this.now, this.tokenRefreshMs, this.creds.tokenSlot && new TokenSlot(this.creds.tokenSlot));
    } catch (err) {
      return { outcome: 'failed', reason: (err as Error).message };
    }
    const headers = job.clear ? apnsClearHeaders(job, this.creds.topic, this.now()) : apnsHeaders(job, this.creds.topic);
    let jwt = token.current();
    let answer = await this.pool.exchange({ ...headers, authorization: `bearer ${jwt}` }, body);
    // Section 5: an expired token is the one case for signing again before 20 minutes, then resending at once.
    if (tokenRefusal(answer) === 'ExpiredProviderToken' && token.expired(jwt)) {
      jwt = token.current();
      answer = await this.pool.exchange({ ...headers, authorization: `bearer ${jwt}` }, body);
    }
    if (tokenRefusal(answer) === 'InvalidProviderToken') {
      // Configuration, not this push: fail at once, never re-sign (the same key gives the same refusal) nor retry.
      return {
        outcome: 'failed', config: true,
        reason: `apns 403 InvalidProviderToken: APNs refused the provider token signed with key id ${token.keyId} for team id ${token.teamId} ` +
          '(check the key file, key id and team id of this app)',
      };
    }
    return apnsOutcome(answer, this.now(), this.creds.topic);
  }

  /** Provider tokens signed so far (Apple allows one per 20 minutes). */
  get tokensSigned(): number {
    return this.token?.signed ?? 0;
  }

  /** Connections opened, requests in flight, waiting for a connection slot, and sent again after a GOAWAY. */
  get stats(): { connectionsOpened: number; inFlight: number; queued: number; resent: number } {
    return { connectionsOpened: this.pool?.opened ?? 0, inFlight: this.pool?.inFlight ?? 0, queued: this.pool?.queued ?? 0, resent: this.pool?.resent ?? 0 };
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

/**
 * `{"aps":{"alert":{"title","body"},"badge"},"messageId","sender","data"}` (section 5), text shortened to fit 4096
 * bytes; `badge` is the user's unread count (section 4, read sync). `silent` (quiet hours): `interruption-level`
 * `passive` and no `sound` key (see `apnsPayload`).
 */
export function apnsBody(m: ChatMessage, silent = false, badge?: number): string | undefined {
  const text = fittedText(m, 'apns', (t) => Buffer.byteLength(apnsPayload(m, t, silent, badge)));
  return text === undefined ? undefined : apnsPayload(m, text, silent, badge);
}

/**
 * Headers of an alert push. `apns-expiration` is the epoch second at which the message's TTL ends, counted from its
 * acceptance (section 4), so a push sent after the message was held or delayed does not outlive it; `ttlSeconds: 0`
 * is 0, "now or never"; unset leaves Apple's default storage.
 */
export function apnsHeaders(job: PushJob, topic: string): OutgoingHttpHeaders {
  const m = job.message;
  const headers: OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': `/3/device/${encodeURIComponent(job.token)}`,
    'apns-topic': topic,
    'apns-push-type': 'alert',
    'apns-priority': m.priority === 'normal' ? '5' : '10',
    'apns-id': randomUUID(),
  };
  if (m.collapseKey !== undefined) headers['apns-collapse-id'] = collapseId(m.collapseKey);
  if (m.ttlSeconds !== undefined) headers['apns-expiration'] = String(m.ttlSeconds === 0 ? 0 : ttlEndSeconds(m));
  return headers;
}

/** apns-collapse-id of clear pushes: a newer clear replaces an older one still queued at Apple. */
export const APNS_CLEAR_COLLAPSE_ID = 'switchboard-clear';

/**
 * Section 4 read sync, a silent clear push: `{"aps":{"content-available":1,"badge":n},"type":"clear","ids":[…]}`,
 * no alert or sound, so iOS wakes the app in the background to remove those notifications, and sets the badge.
 * Ids that do not fit 4096 bytes are left out (newest kept); the badge is always exact.
 */
export function apnsClearBody(job: PushJob): string | undefined {
  const build = (ids: string[]) => JSON.stringify({ aps: { 'content-available': 1, badge: job.badge ?? 0 }, type: 'clear', ids });
  return fitIds(job.clear?.ids ?? [], build);
}

/**
 * Headers of a clear push (Apple, "Sending notification requests to APNs" and "Pushing background updates to your
 * App"): `apns-push-type: background`, `apns-priority: 5` (10 is an error for background pushes), the collapse id.
 */
export function apnsClearHeaders(job: PushJob, topic: string, now: number): OutgoingHttpHeaders {
  return {
    ':method': 'POST',
    ':path': `/3/device/${encodeURIComponent(job.token)}`,
    'apns-topic': topic,
    'apns-push-type': 'background',
    'apns-priority': '5',
    'apns-id': randomUUID(),
    'apns-collapse-id': APNS_CLEAR_COLLAPSE_ID,
    'apns-expiration': String(Math.floor(now / 1000) + (job.message.ttlSeconds ?? 3600)),
  };
}

/** A key over 64 bytes (possible with multi-byte characters) is replaced by its SHA-256, so keys stay distinct. */
function collapseId(key: string): string {
  return Buffer.byteLength(key) <= MAX_COLLAPSE_ID_BYTES ? key : createHash('sha256').update(key).digest('hex');
}

/**
 * Maps an APNs answer to an outcome (Apple's "Handling notification responses from APNs"); `now` epoch ms (Retry-After
 * dates), `topic` the apns-topic sent (named in a DeviceTokenNotForTopic reason).
 */
export function apnsOutcome(x: ApnsExchange, now: number, topic = ''): PushOutcome {
  if (x.kind === 'lost') return { outcome: 'retry', reason: `apns: ${x.reason}` };
  const { reason, timestamp } = answerBody(x.body);
  const label = `apns ${x.status}${reason ? ` ${reason}` : ''}`;
  if (x.status === 200) {
    const id = x.headers['apns-id'];
    return typeof id === 'string' ? { outcome: 'ok', vendorId: id } : { outcome: 'ok' };
  }
  if (x.status === 410) {
    // Apple's timestamp says since when the token is invalid; kept in the reason for whoever removes it.
    return { outcome: 'dead_token', reason: timestamp !== undefined ? `${label} since ${new Date(timestamp).toISOString()}` : label };
  }
  if (x.status === 400 && DEAD_TOKEN_400.has(reason)) return { outcome: 'dead_token', reason: label };
  if (x.status === 400 && reason === 'DeviceTokenNotForTopic') {
    // Kept, and never retried: the same token and topic get the same answer. Logged as configuration (pool.ts).
    return { outcome: 'failed', config: true, reason: `${label}: the token is not for topic ${JSON.stringify(topic)} (SWITCHBOARD_APNS_TOPIC; a token of another app or build); the token is kept` };
  }
  // 403 ExpiredProviderToken that survived a re-sign: our clock is off; retrying later may meet a new token.
  if (x.status === 429 || x.status >= 500 || (x.status === 403 && reason === 'ExpiredProviderToken')) {
    const retryAfterMs = parseRetryAfter(x.headers['retry-after'], now);
    return retryAfterMs === undefined ? { outcome: 'retry', reason: label } : { outcome: 'retry', reason: label, retryAfterMs };
  }
  return { outcome: 'failed', reason: label };
}

/** Apple's reason when APNs refused the provider token (403), else undefined. */
function tokenRefusal(x: ApnsExchange): string | undefined {
  if (x.kind !== 'answer' || x.status !== 403) return undefined;
  const { reason } = answerBody(x.body);
  return reason === 'ExpiredProviderToken' || reason === 'InvalidProviderToken' ? reason : undefined;
}

function answerBody(body: string): { reason: string; timestamp?: number } {
  try {
    const parsed = JSON.parse(body) as { reason?: unknown; timestamp?: unknown };
    return {
      reason: typeof parsed.reason === 'string' ? parsed.reason : '',
      timestamp: typeof parsed.timestamp === 'number' ? parsed.timestamp : undefined,
    };
  } catch {
    return { reason: '' };
  }
}

/** Retry-After as delta-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
