import { randomBytes } from 'node:crypto';
import type { HmsCredentials } from '../../senders/vendor-config.js';
import { answerJson, BehaviorSlot, startRecordingServer, type CommonBehavior, type RecordedRequest } from './recording-server.js';

/**
 * A local Huawei Push Kit for tests and benchmarks: the OAuth endpoint (`POST /oauth2/v3/token`, client
 * credentials) and `POST /v1/{appId}/messages:send` with Push Kit's result codes in the JSON body. One origin
 * serves both, so `creds` points authEndpoint and pushEndpoint at it.
 */

export type HmsAnswer =
  | 'ok' // 200 80000000
  | 'illegal_token' // 200 80100000, msg {"success":0,"failure":1,"illegal_tokens":[token]}
  | 'all_invalid' // 400 80300007 all tokens invalid
  | 'token_expired' // 401 80200003 even with a valid token
  | 'flow_control' // 503 80300010
  | 'internal' // 500 81000001
  | 'bad_request' // 400 80100003 incorrect message structure
  | 'drop';

export interface HmsBehavior extends CommonBehavior {
  /** How sends are answered; default 'ok'. */
  answer?: HmsAnswer;
  /** Retry-After (seconds) on 503/500 answers; default none. */
  retryAfterSeconds?: number;
}

export interface HmsServer {
  origin: string;
  ca?: string;
  /** The same CA as a file, for NODE_EXTRA_CA_CERTS of a child process. */
  caFile?: string;
  /** Credentials for a sender pointed at this server. */
  creds: HmsCredentials;
  requests: RecordedRequest[];
  /** Connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections(): number;
  tokenRequests(): RecordedRequest[];
  sends(): RecordedRequest[];
  setBehavior(b: HmsBehavior): void;
  /** Lifetime of access tokens issued from now on (default 3600 s). */
  setTokenLifetime(seconds: number): void;
  /** This push token is reported as illegal from now on (an app uninstalled). */
  invalidate(token: string): void;
  /** Every access token issued so far is answered 401 80200003 from now on. */
  revokeTokens(): void;
  close(): Promise<void>;
}

const SEND_PATH = /^\/v1\/([^/]+)\/messages:send$/;

export async function startHmsServer(options: { appId?: string; tls?: boolean; record?: boolean } = {}): Promise<HmsServer> {
  const appId = options.appId ?? '104000001';
  const clientId = appId;
  const clientSecret = randomBytes(16).toString('hex');
  const behavior = new BehaviorSlot<HmsBehavior>({});
  const issued = new Map<string, number>();
  const illegal = new Set<string>();
  let tokenLifetimeS = 3600;

  const server = await startRecordingServer((req, res, drop) => {
    if (req.method === 'POST' && req.path === '/oauth2/v3/token') {
      const form = new URLSearchParams(req.body);
      req.parsed = Object.fromEntries(form);
      if (form.get('grant_type') !== 'client_credentials') return answerJson(res, 400, { error: 1102, sub_error: 20003, error_description: 'unsupported grant_type' });
      if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
        return answerJson(res, 400, { error: 1101, sub_error: 20152, error_description: 'invalid client' });
      }
      const token = `DQEBA${randomBytes(32).toString('base64')}`;
      issued.set(token, Date.now() + tokenLifetimeS * 1000);
      return answerJson(res, 200, { access_token: token, expires_in: tokenLifetimeS, token_type: 'Bearer' });
    }
    const match = req.method === 'POST' ? SEND_PATH.exec(req.path) : null;
    if (!match) return answerJson(res, 404, { code: '80300001', msg: 'Not found' });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const expiry = bearer === undefined ? undefined : issued.get(bearer);
    if (expiry === undefined || expiry <= Date.now()) return answerJson(res, 401, { code: '80200003', msg: 'Oauth token expired.', requestId: requestId() });
    if (decodeURIComponent(match[1]) !== appId) return answerJson(res, 403, { code: '80300002', msg: 'The current app does not have the permission to send messages', requestId: requestId() });
    let body: unknown;
    try {
      body = JSON.parse(req.body);
      req.parsed = body;
    } catch {
      return answerJson(res, 400, { code: '80100001', msg: 'Some request parameters are incorrect', requestId: requestId() });
    }
    const invalid = validateSend(body);
    if (invalid) return answerJson(res, 400, { code: '80100003', msg: `Incorrect message structure: ${invalid}`, requestId: requestId() });
    // Push Kit server API, Sending Messages: "The message body cannot exceed 4096 bytes (excluding token)".
    if (bodyBytesWithoutTokens(body as { message: { token: string[] } }) > 4096) {
      return answerJson(res, 400, { code: '80300008', msg: 'The message body size exceeds the default value', requestId: requestId() });
    }
    const tokens = (body as { message: { token: string[] } }).message.token;
    const b = behavior.take({});
    const answer: HmsAnswer = tokens.every((t) => illegal.has(t)) ? 'all_invalid' : tokens.some((t) => illegal.has(t)) ? 'illegal_token' : b.answer ?? 'ok';
    const retryAfter: Record<string, string> = b.retryAfterSeconds === undefined ? {} : { 'retry-after': String(b.retryAfterSeconds) };
    server.later(b.delayMs ?? 0, () => {
      switch (answer) {
        case 'ok':
          return answerJson(res, 200, { code: '80000000', msg: 'Success', requestId: requestId() });
        case 'illegal_token': {
          const bad = tokens.filter((t) => illegal.has(t) || b.answer === 'illegal_token');
          const detail = { success: tokens.length - bad.length, failure: bad.length, illegal_tokens: bad };
          return answerJson(res, 200, { code: '80100000', msg: JSON.stringify(detail), requestId: requestId() });
        }
        case 'all_invalid':
          return answerJson(res, 400, { code: '80300007', msg: 'All the tokens are invalid', requestId: requestId() });
        case 'token_expired':
          return answerJson(res, 401, { code: '80200003', msg: 'Oauth token expired.', requestId: requestId() });
        case 'flow_control':
          return answerJson(res, 503, { code: '80300010', msg: 'Flow control, the sending rate is too high', requestId: requestId() }, retryAfter);
        case 'internal':
          return answerJson(res, 500, { code: '81000001', msg: 'System internal error', requestId: requestId() }, retryAfter);
        case 'bad_request':
          return answerJson(res, 400, { code: '80100003', msg: 'Incorrect message structure', requestId: requestId() });
        case 'drop':
          return drop();
      }
    });
  }, options);

  return {
    origin: server.origin,
    ...(server.ca ? { ca: server.ca, caFile: server.caFile } : {}),
    creds: { appId, clientId, clientSecret, authEndpoint: server.origin, pushEndpoint: server.origin },
    requests: server.requests,
    connections: server.connections,
    tokenRequests: () => server.requests.filter((r) => r.path === '/oauth2/v3/token'),
    sends: () => server.requests.filter((r) => SEND_PATH.test(r.path)),
    setBehavior: (b) => behavior.set(b),
    setTokenLifetime: (s) => { tokenLifetimeS = s; },
    invalidate: (t) => { illegal.add(t); },
    revokeTokens: () => issued.clear(),
    close: () => server.close(),
  };
}

/** Push Kit's checks on a send body (the parts Switchboard uses); returns the problem, or undefined. */
function validateSend(body: unknown): string | undefined {
  const b = body as { validate_only?: unknown; message?: Record<string, unknown> };
  if (b.validate_only !== undefined && typeof b.validate_only !== 'boolean') return 'validate_only must be a boolean';
  const m = b.message;
  if (typeof m !== 'object' || m === null) return 'message is required';
  if (!Array.isArray(m.token) || m.token.length < 1 || m.token.length > 1000 || !m.token.every((t) => typeof t === 'string' && t !== '')) {
    return 'message.token must be an array of 1-1000 tokens';
  }
  if (m.data !== undefined && typeof m.data !== 'string') return 'message.data must be a string';
  const a = m.android as Record<string, unknown> | undefined;
  if (a !== undefined) {
    if (a.urgency !== undefined && a.urgency !== 'HIGH' && a.urgency !== 'NORMAL') return 'android.urgency must be HIGH or NORMAL';
    if (a.ttl !== undefined && !(typeof a.ttl === 'string' && /^\d+(\.\d{1,9})?s$/.test(a.ttl))) return 'android.ttl must be like "86400s"';
    // Push Kit server API, ttl: "The default value is 86400 (1 day), and the maximum value is 1296000 (15 days)".
    if (a.ttl !== undefined && parseFloat(a.ttl as string) > 1_296_000) return 'android.ttl must be at most 1296000s (15 days)';
    if (a.collapse_key !== undefined && !(Number.isInteger(a.collapse_key) && (a.collapse_key as number) >= -1 && (a.collapse_key as number) <= 100)) {
      return 'android.collapse_key must be an integer from -1 to 100';
    }
    const n = a.notification as Record<string, unknown> | undefined;
    if (n !== undefined) {
      if (typeof n.title !== 'string' || typeof n.body !== 'string') return 'android.notification.title and body must be strings';
      const click = n.click_action as { type?: unknown } | undefined;
      if (!click || ![1, 2, 3, 4].includes(click.type as number)) return 'android.notification.click_action.type must be 1-4';
      if (n.tag !== undefined && typeof n.tag !== 'string') return 'android.notification.tag must be a string';
      // Push Kit server API, AndroidNotification.importance: LOW (silent), NORMAL, HIGH (needs approval).
      if (n.importance !== undefined && !['LOW', 'NORMAL', 'HIGH'].includes(n.importance as string)) return 'android.notification.importance must be LOW, NORMAL or HIGH';
      // Push Kit server API, AndroidNotification.badge (BadgeNotification): `class`, the app's entry activity, is
      // required for any badge; add_num 1-99; set_num 0-99 (it overrides add_num).
      if (n.badge !== undefined) {
        const badge = n.badge as Record<string, unknown> | null;
        if (typeof badge !== 'object' || badge === null || typeof badge.class !== 'string' || badge.class === '') return 'android.notification.badge.class is required';
        const num = (v: unknown, min: number) => Number.isInteger(v) && (v as number) >= min && (v as number) <= 99;
        if (badge.add_num !== undefined && !num(badge.add_num, 1)) return 'android.notification.badge.add_num must be an integer 1-99';
        if (badge.set_num !== undefined && !num(badge.set_num, 0)) return 'android.notification.badge.set_num must be an integer 0-99';
      }
    }
  }
  return undefined;
}

/** The body's size as Push Kit counts it: without the device tokens. */
function bodyBytesWithoutTokens(body: { message: { token: string[] } }): number {
  return Buffer.byteLength(JSON.stringify({ ...body, message: { ...body.message, token: [] } }));
}

function requestId(): string {
  return `${Date.now()}${randomBytes(4).toString('hex')}`;
}
