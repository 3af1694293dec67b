import { generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answerJson, BehaviorSlot, startRecordingServer, type CommonBehavior, type RecordedRequest } from './recording-server.js';

/**
 * A local FCM HTTP v1 service (PROTOCOL.md section 5) for tests and benchmarks: the Google OAuth token endpoint
 * (`POST /token`, RS256 service-account assertion verified against the key it generated) and
 * `POST /v1/projects/{id}/messages:send` (bearer token checked, body validated as FCM does, v1 error bodies).
 * Point a sender at it with `FcmCredentials { serviceAccountFile, endpoint: origin }`.
 */

export type FcmAnswer =
  | 'ok'
  | 'unregistered' // 404 NOT_FOUND, errorCode UNREGISTERED
  | 'invalid_token' // 400 INVALID_ARGUMENT "The registration token is not a valid FCM registration token"
  | 'invalid_argument' // 400 INVALID_ARGUMENT about another field
  | 'sender_id_mismatch' // 403 PERMISSION_DENIED, errorCode SENDER_ID_MISMATCH
  | 'quota_exceeded' // 429 RESOURCE_EXHAUSTED, errorCode QUOTA_EXCEEDED
  | 'internal' // 500 INTERNAL
  | 'unavailable' // 503 UNAVAILABLE
  | 'unauthenticated' // 401 UNAUTHENTICATED even with a valid token
  | 'drop'; // the connection is destroyed without an answer

export interface FcmBehavior extends CommonBehavior {
  /** How sends are answered; default 'ok'. */
  answer?: FcmAnswer;
  /** Retry-After (seconds) on 429 and 5xx answers; default none. */
  retryAfterSeconds?: number;
}

export interface FcmServer {
  origin: string;
  /** CA to trust when started with `tls: true`. */
  ca?: string;
  /** The same CA as a file, for NODE_EXTRA_CA_CERTS of a child process. */
  caFile?: string;
  /** A service-account JSON for this server (its token_uri is `${origin}/token`). */
  serviceAccountFile: string;
  projectId: string;
  clientEmail: string;
  /** Every request, token exchanges and sends alike. */
  requests: RecordedRequest[];
  /** Connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections(): number;
  tokenRequests(): RecordedRequest[];
  sends(): RecordedRequest[];
  setBehavior(b: FcmBehavior): void;
  /** Lifetime of access tokens issued from now on (default 3600 s). */
  setTokenLifetime(seconds: number): void;
  /** Makes the token endpoint refuse assertions (400 invalid_grant) or fail (503) until set back to 'ok'. */
  setTokenAnswer(answer: 'ok' | 'invalid_grant' | 'unavailable'): void;
  /** This registration token is answered UNREGISTERED from now on (an app uninstalled). */
  unregister(token: string): void;
  /** Every access token issued so far is rejected with 401 from now on. */
  revokeTokens(): void;
  close(): Promise<void>;
}

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const FCM_ERROR = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';
const SEND_PATH = /^\/v1\/projects\/([^/]+)\/messages:send$/;
const MESSAGE_FIELDS = new Set(['name', 'token', 'topic', 'condition', 'data', 'notification', 'android', 'webpush', 'apns', 'fcm_options']);
const ANDROID_FIELDS = new Set(['collapse_key', 'priority', 'ttl', 'restricted_package_name', 'data', 'notification', 'fcm_options', 'direct_boot_ok']);
const NOTIFICATION_FIELDS = new Set(['title', 'body', 'image']);

export async function startFcmServer(options: { projectId?: string; tls?: boolean; record?: boolean } = {}): Promise<FcmServer> {
  const projectId = options.projectId ?? 'switchboard-test';
  const clientEmail = `switchboard-sender@${projectId}.iam.gserviceaccount.com`;
  const { privateKey, publicKey } = serviceAccountKeys();
  const behavior = new BehaviorSlot<FcmBehavior>({});
  const issued = new Map<string, number>(); // access token -> expiry (epoch ms)
  const unregistered = new Set<string>();
  let tokenLifetimeS = 3600;
  let tokenAnswer: 'ok' | 'invalid_grant' | 'unavailable' = 'ok';
  let sequence = 0;
  let tokenUrl = '';

  const server = await startRecordingServer((req, res, drop) => {
    if (req.method === 'POST' && req.path === '/token') {
      const form = new URLSearchParams(req.body);
      req.parsed = Object.fromEntries(form);
      if (tokenAnswer === 'unavailable') return answerJson(res, 503, { error: 'temporarily_unavailable', error_description: 'try again later' });
      if (form.get('grant_type') !== JWT_BEARER) return answerJson(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: ' + form.get('grant_type') });
      const problem = tokenAnswer === 'invalid_grant' ? 'Invalid JWT Signature.' : checkAssertion(form.get('assertion') ?? '', publicKey, clientEmail, tokenUrl);
      if (problem) return answerJson(res, 400, { error: 'invalid_grant', error_description: problem });
      const accessToken = `ya29.${randomBytes(24).toString('base64url')}`;
      issued.set(accessToken, Date.now() + tokenLifetimeS * 1000);
      return answerJson(res, 200, { access_token: accessToken, expires_in: tokenLifetimeS, token_type: 'Bearer' });
    }
    const match = req.method === 'POST' ? SEND_PATH.exec(req.path) : null;
    if (!match) return answerJson(res, 404, googleError(404, 'NOT_FOUND', 'The requested URL was not found on this server.'));
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const expiry = bearer === undefined ? undefined : issued.get(bearer);
    if (expiry === undefined || expiry <= Date.now()) return answerJson(res, 401, unauthenticated());
    if (decodeURIComponent(match[1]) !== projectId) {
      return answerJson(res, 403, googleError(403, 'PERMISSION_DENIED', `Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/${match[1]}' (or it may not exist).`));
    }
    let body: unknown;
    try {
      body = JSON.parse(req.body);
      req.parsed = body;
    } catch {
      return answerJson(res, 400, googleError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
    }
    const invalid = validateSend(body);
    if (invalid) return answerJson(res, 400, googleError(400, 'INVALID_ARGUMENT', invalid, 'INVALID_ARGUMENT'));
    const token = (body as { message: { token: string } }).message.token;
    const b = behavior.take({});
    const answer: FcmAnswer = unregistered.has(token) ? 'unregistered' : b.answer ?? 'ok';
    const retryAfter: Record<string, string> = b.retryAfterSeconds === undefined ? {} : { 'retry-after': String(b.retryAfterSeconds) };
    server.later(b.delayMs ?? 0, () => {
      switch (answer) {
        case 'ok':
          return answerJson(res, 200, { name: `projects/${projectId}/messages/0:${Date.now()}${String(++sequence).padStart(6, '0')}%${randomBytes(8).toString('hex')}` });
        case 'unregistered':
          return answerJson(res, 404, googleError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED'));
        case 'invalid_token':
          return answerJson(res, 400, googleError(400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', 'INVALID_ARGUMENT'));
        case 'invalid_argument':
          return answerJson(res, 400, googleError(400, 'INVALID_ARGUMENT', "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format", 'INVALID_ARGUMENT'));
        case 'sender_id_mismatch':
          return answerJson(res, 403, googleError(403, 'PERMISSION_DENIED', 'SenderId mismatch', 'SENDER_ID_MISMATCH'));
        case 'quota_exceeded':
          return answerJson(res, 429, googleError(429, 'RESOURCE_EXHAUSTED', "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'", 'QUOTA_EXCEEDED'), retryAfter);
        case 'internal':
          return answerJson(res, 500, googleError(500, 'INTERNAL', 'Internal error encountered.', 'INTERNAL'), retryAfter);
        case 'unavailable':
          return answerJson(res, 503, googleError(503, 'UNAVAILABLE', 'The service is currently unavailable.', 'UNAVAILABLE'), retryAfter);
        case 'unauthenticated':
          return answerJson(res, 401, unauthenticated());
        case 'drop':
          return drop();
      }
    });
  }, options);

  tokenUrl = `${server.origin}/token`;
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-fcm-'));
  const serviceAccountFile = join(dir, 'service-account.json');
  writeFileSync(serviceAccountFile, JSON.stringify({
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: clientEmail,
    client_id: '100000000000000000001',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUrl,
  }, null, 2));

  return {
    origin: server.origin,
    ...(server.ca ? { ca: server.ca, caFile: server.caFile } : {}),
    serviceAccountFile,
    projectId,
    clientEmail,
    requests: server.requests,
    connections: server.connections,
    tokenRequests: () => server.requests.filter((r) => r.path === '/token'),
    sends: () => server.requests.filter((r) => SEND_PATH.test(r.path)),
    setBehavior: (b) => behavior.set(b),
    setTokenLifetime: (s) => { tokenLifetimeS = s; },
    setTokenAnswer: (a) => { tokenAnswer = a; },
    unregister: (t) => { unregistered.add(t); },
    revokeTokens: () => issued.clear(),
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let keys: { privateKey: KeyObject; publicKey: KeyObject } | undefined;
/** One RSA key pair per process: generating 2048-bit keys costs a few hundred ms, and servers need not differ. */
function serviceAccountKeys(): { privateKey: KeyObject; publicKey: KeyObject } {
  keys ??= generateKeyPairSync('rsa', { modulusLength: 2048 });
  return keys;
}

/** Google's checks on a service-account assertion; returns the error_description, or undefined when valid. */
function checkAssertion(jwt: string, publicKey: KeyObject, clientEmail: string, audience: string): string | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'Invalid JWT: not a JWS.';
  const header = decodeJson(parts[0]) as { alg?: string } | undefined;
  if (header?.alg !== 'RS256') return 'Invalid JWT: alg must be RS256.';
  if (!verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2], 'base64url'))) return 'Invalid JWT Signature.';
  const c = decodeJson(parts[1]) as { iss?: string; scope?: string; aud?: string; iat?: number; exp?: number } | undefined;
  const now = Date.now() / 1000;
  if (c?.iss !== clientEmail) return 'Invalid JWT: iss is not the service account.';
  if (!c.scope?.split(' ').includes(SCOPE)) return 'Invalid OAuth scope or ID token audience provided.';
  if (c.aud !== audience) return `Invalid JWT: aud must be ${audience}.`;
  if (typeof c.iat !== 'number' || typeof c.exp !== 'number' || c.exp - c.iat > 3600 || c.exp < now || c.iat > now + 300) {
    return 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.';
  }
  return undefined;
}

/** The checks FCM makes on a send body; returns the INVALID_ARGUMENT message, or undefined when valid. */
function validateSend(body: unknown): string | undefined {
  const message = (body as { message?: unknown })?.message;
  if (!isObject(message)) return 'Request contains an invalid argument: message is required.';
  const unknown = Object.keys(message).find((k) => !MESSAGE_FIELDS.has(k));
  if (unknown) return `Invalid JSON payload received. Unknown name "${unknown}" at 'message': Cannot find field.`;
  if (typeof message.token !== 'string' || message.token === '') return 'Request contains an invalid argument: exactly one of token, topic or condition is required.';
  if (message.notification !== undefined) {
    if (!isObject(message.notification)) return "Invalid value at 'message.notification'";
    for (const [k, v] of Object.entries(message.notification)) {
      if (!NOTIFICATION_FIELDS.has(k)) return `Invalid JSON payload received. Unknown name "${k}" at 'message.notification': Cannot find field.`;
      if (typeof v !== 'string') return `Invalid value at 'message.notification.${k}' (TYPE_STRING)`;
    }
  }
  if (message.data !== undefined) {
    if (!isObject(message.data)) return "Invalid value at 'message.data'";
    for (const [k, v] of Object.entries(message.data)) {
      if (typeof v !== 'string') return `Invalid value at 'message.data[0].value' (TYPE_STRING), ${JSON.stringify(v)}`;
      if (isReservedDataKey(k)) return `Invalid data payload key: ${k}`;
    }
  }
  if (message.android !== undefined) {
    const a = message.android;
    if (!isObject(a)) return "Invalid value at 'message.android'";
    const unknownAndroid = Object.keys(a).find((k) => !ANDROID_FIELDS.has(k));
    if (unknownAndroid) return `Invalid JSON payload received. Unknown name "${unknownAndroid}" at 'message.android': Cannot find field.`;
    if (a.priority !== undefined && !['high', 'normal'].includes(String(a.priority).toLowerCase())) return `Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), ${JSON.stringify(a.priority)}`;
    if (a.ttl !== undefined && !(typeof a.ttl === 'string' && /^\d+(\.\d{1,9})?s$/.test(a.ttl))) return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format";
    if (a.collapse_key !== undefined && typeof a.collapse_key !== 'string') return "Invalid value at 'message.android.collapse_key' (TYPE_STRING)";
    if (a.notification !== undefined) {
      const invalid = validateAndroidNotification(a.notification);
      if (invalid) return invalid;
    }
  }
  const payloadBytes = Buffer.byteLength(JSON.stringify({ notification: message.notification ?? {}, data: message.data ?? {} }));
  if (payloadBytes > 4096) return 'Android message is too big';
  return undefined;
}

/**
 * Data keys FCM refuses with 400 INVALID_ARGUMENT. Google's HTTP v1 reference (projects.messages, Message.data):
 * "The key should not be a reserved word ("from", "message_type", or any word starting with "google." or
 * "gcm.notification.")"; the message-types guide (firebase.google.com/docs/cloud-messaging/concept-options,
 * "Data messages") also reserves "notification" and any key starting with "gcm.".
 */
export function isReservedDataKey(key: string): boolean {
  return key === 'from' || key === 'message_type' || key === 'notification' || /^(google|gcm)\./i.test(key);
}

/**
 * FCM v1 reference, AndroidNotification: a proto message, so an unknown name or a value outside an enum is a 400
 * INVALID_ARGUMENT. Only the fields Switchboard may send are checked by type; the rest just have to be known.
 */
const ANDROID_NOTIFICATION_FIELDS = new Set([
  'title', 'body', 'icon', 'color', 'sound', 'tag', 'click_action', 'body_loc_key', 'body_loc_args', 'title_loc_key', 'title_loc_args',
  'channel_id', 'ticker', 'sticky', 'event_time', 'local_only', 'notification_priority', 'default_sound', 'default_vibrate_timings',
  'default_light_settings', 'vibrate_timings', 'visibility', 'notification_count', 'light_settings', 'image', 'bypass_proxy_notification', 'proxy',
]);
const NOTIFICATION_PRIORITIES = ['PRIORITY_UNSPECIFIED', 'PRIORITY_MIN', 'PRIORITY_LOW', 'PRIORITY_DEFAULT', 'PRIORITY_HIGH', 'PRIORITY_MAX'];

function validateAndroidNotification(n: unknown): string | undefined {
  if (!isObject(n)) return "Invalid value at 'message.android.notification'";
  const unknown = Object.keys(n).find((k) => !ANDROID_NOTIFICATION_FIELDS.has(k));
  if (unknown) return `Invalid JSON payload received. Unknown name "${unknown}" at 'message.android.notification': Cannot find field.`;
  if (n.notification_priority !== undefined && !NOTIFICATION_PRIORITIES.includes(n.notification_priority as string)) {
    return `Invalid value at 'message.android.notification.notification_priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidNotification.NotificationPriority), ${JSON.stringify(n.notification_priority)}`;
  }
  if (n.default_sound !== undefined && typeof n.default_sound !== 'boolean') return "Invalid value at 'message.android.notification.default_sound' (TYPE_BOOL)";
  return undefined;
}

function googleError(code: number, status: string, message: string, errorCode?: string): unknown {
  return { error: { code, message, status, ...(errorCode ? { details: [{ '@type': FCM_ERROR, errorCode }] } : {}) } };
}

function unauthenticated(): unknown {
  return googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.');
}

function decodeJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
