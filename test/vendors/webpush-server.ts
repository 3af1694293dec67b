import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify, type ECDH } from 'node:crypto';
import webpush from 'web-push';
import type { WebPushCredentials } from '../../senders/vendor-config.js';
import { answerJson, BehaviorSlot, startRecordingServer, type CommonBehavior, type RecordedRequest } from './recording-server.js';

/**
 * A local Web Push service (RFC 8030) over TLS, for tests and benchmarks. It issues browser-like subscriptions
 * whose private keys it keeps, so it can check every push fully. The checks are: the VAPID `Authorization: vapid
 * t=<jwt>, k=<key>` (RFC 8292, ES256 verified with k, aud = this origin), the TTL, Urgency and Topic headers, and
 * `Content-Encoding: aes128gcm`. It then decrypts the body (RFC 8291). Each recorded push's `parsed` holds the
 * decrypted plaintext as JSON.
 */

export type WebPushAnswer =
  | 'ok' // 201 Created with a Location
  | 'gone' // 410: the subscription expired or was unsubscribed
  | 'not_found' // 404
  | 'too_many' // 429
  | 'server_error' // 500
  | 'unavailable' // 503
  | 'bad_request' // 400
  | 'too_large' // 413
  | 'drop';

export interface WebPushBehavior extends CommonBehavior {
  /** How pushes are answered; default 'ok'. */
  answer?: WebPushAnswer;
  /** Retry-After (seconds) on 429 and 5xx answers; default none. */
  retryAfterSeconds?: number;
}

/** What the server checked on one push. */
export interface ReceivedPush {
  subscriptionId: string;
  ttl: number;
  urgency?: string;
  topic?: string;
  vapidSubject: string;
  plaintext: string;
}

export interface WebPushServer {
  origin: string;
  /** CA that signed the server certificate: pass as the sender's `ca`. */
  ca: string;
  /** The same CA as a file, for NODE_EXTRA_CA_CERTS of a child process (a benchmarked node). */
  caFile: string;
  /** VAPID credentials the server expects (generated at start). */
  creds: WebPushCredentials;
  requests: RecordedRequest[];
  /** Connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections(): number;
  /** Pushes that passed every check, in order. */
  received: ReceivedPush[];
  /** A new browser subscription on this service, as the device token (PushSubscription JSON). */
  subscribe(): string;
  /** The subscription is answered 410 Gone from now on. */
  expire(token: string): void;
  setBehavior(b: WebPushBehavior): void;
  close(): Promise<void>;
}

interface Subscription {
  ecdh: ECDH;
  auth: Buffer;
  gone: boolean;
}

const PUSH_PATH = /^\/push\/([A-Za-z0-9_-]+)$/;
const URGENCIES = new Set(['very-low', 'low', 'normal', 'high']);

export async function startWebPushServer(options: { record?: boolean } = {}): Promise<WebPushServer> {
  const vapid = webpush.generateVAPIDKeys();
  const subject = 'mailto:ops@switchboard.test';
  const subscriptions = new Map<string, Subscription>();
  const behavior = new BehaviorSlot<WebPushBehavior>({});
  const received: ReceivedPush[] = [];
  let origin = '';
  let sequence = 0;

  const server = await startRecordingServer((req, res, drop) => {
    const id = req.method === 'POST' ? PUSH_PATH.exec(req.path)?.[1] : undefined;
    const sub = id === undefined ? undefined : subscriptions.get(id);
    if (id === undefined || !sub) return answerJson(res, 404, { code: 404, errno: 102, error: 'Not Found', message: 'Request did not validate invalid token' });
    const authProblem = checkVapid(req.headers.authorization, vapid.publicKey, origin);
    if (typeof authProblem === 'string') return answerJson(res, 401, { code: 401, errno: 109, error: 'Unauthorized', message: authProblem });
    const ttl = req.headers.ttl;
    if (typeof ttl !== 'string' || !/^\d+$/.test(ttl)) return answerJson(res, 400, { code: 400, errno: 111, error: 'Bad Request', message: 'Missing TTL header' });
    const urgency = req.headers.urgency as string | undefined;
    if (urgency !== undefined && !URGENCIES.has(urgency)) return answerJson(res, 400, { code: 400, errno: 112, error: 'Bad Request', message: 'Invalid Urgency header' });
    const topic = req.headers.topic as string | undefined;
    if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic)) return answerJson(res, 400, { code: 400, errno: 113, error: 'Bad Request', message: 'Topic must be at most 32 base64url characters' });
    if (req.headers['content-encoding'] !== 'aes128gcm') return answerJson(res, 400, { code: 400, errno: 110, error: 'Bad Request', message: 'Content-Encoding must be aes128gcm' });
    if (req.raw.length > 4096) return answerJson(res, 413, { code: 413, errno: 104, error: 'Payload Too Large', message: 'Body exceeds 4096 bytes' });
    let plaintext: string;
    try {
      plaintext = decryptAes128gcm(req.raw, sub.ecdh, sub.auth).toString('utf8');
    } catch (err) {
      return answerJson(res, 400, { code: 400, errno: 110, error: 'Bad Request', message: `Could not decrypt: ${(err as Error).message}` });
    }
    try {
      req.parsed = JSON.parse(plaintext);
    } catch {
      req.parsed = plaintext;
    }
    const b = behavior.take({});
    const answer: WebPushAnswer = sub.gone ? 'gone' : b.answer ?? 'ok';
    if (answer === 'ok') received.push({ subscriptionId: id, ttl: Number(ttl), ...(urgency ? { urgency } : {}), ...(topic ? { topic } : {}), vapidSubject: authProblem.sub, plaintext });
    const retryAfter: Record<string, string> = b.retryAfterSeconds === undefined ? {} : { 'retry-after': String(b.retryAfterSeconds) };
    const error = (code: number, error: string, headers: Record<string, string> = {}) => answerJson(res, code, { code, errno: 999, error, message: error }, headers);
    server.later(b.delayMs ?? 0, () => {
      switch (answer) {
        case 'ok':
          res.writeHead(201, { location: `${origin}/m/${id}-${++sequence}`, 'content-length': 0 });
          return res.end();
        case 'gone':
          return error(410, 'Gone');
        case 'not_found':
          return error(404, 'Not Found');
        case 'too_many':
          return error(429, 'Too Many Requests', retryAfter);
        case 'server_error':
          return error(500, 'Internal Server Error', retryAfter);
        case 'unavailable':
          return error(503, 'Service Unavailable', retryAfter);
        case 'bad_request':
          return error(400, 'Bad Request');
        case 'too_large':
          return error(413, 'Payload Too Large');
        case 'drop':
          return drop();
      }
    });
  }, { tls: true, record: options.record });
  origin = server.origin;

  return {
    origin,
    ca: server.ca!,
    caFile: server.caFile!,
    creds: { vapidPublicKey: vapid.publicKey, vapidPrivateKey: vapid.privateKey, subject },
    requests: server.requests,
    connections: server.connections,
    received,
    subscribe() {
      const id = randomBytes(12).toString('base64url');
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      subscriptions.set(id, { ecdh, auth, gone: false });
      return JSON.stringify({ endpoint: `${origin}/push/${id}`, expirationTime: null, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } });
    },
    expire(token) {
      const id = PUSH_PATH.exec(new URL((JSON.parse(token) as { endpoint: string }).endpoint).pathname)?.[1];
      const sub = id === undefined ? undefined : subscriptions.get(id);
      if (sub) sub.gone = true;
    },
    setBehavior: (b) => behavior.set(b),
    close: () => server.close(),
  };
}

/** RFC 8292 checks; returns the JWT claims when valid, else the problem. */
function checkVapid(header: string | undefined, expectedKey: string, audience: string): string | { sub: string } {
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header ?? '');
  if (!m) return 'Authorization must be "vapid t=<jwt>, k=<key>"';
  const [, jwt, k] = m;
  if (k !== expectedKey) return 'VAPID key does not match the application server key';
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'VAPID JWT is malformed';
  const point = Buffer.from(k, 'base64url');
  if (point.length !== 65 || point[0] !== 4) return 'VAPID key is not an uncompressed P-256 point';
  const key = createPublicKey({ format: 'jwk', key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') } });
  const header64 = JSON.parse(Buffer.from(parts[0], 'base64url').toString()) as { alg?: string };
  if (header64.alg !== 'ES256') return 'VAPID JWT must be ES256';
  if (!verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2], 'base64url'))) return 'VAPID JWT signature is invalid';
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()) as { aud?: string; exp?: number; sub?: string };
  const now = Date.now() / 1000;
  if (claims.aud !== audience) return `VAPID aud must be ${audience}`;
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 24 * 3600 + 60) return 'VAPID exp must be within 24 hours';
  if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub)) return 'VAPID sub must be a mailto: or https: URL';
  return { sub: claims.sub };
}

/** RFC 8291 / RFC 8188 decryption with the subscription's private key and auth secret. */
function decryptAes128gcm(body: Buffer, ecdh: ECDH, auth: Buffer): Buffer {
  if (body.length < 21) throw new Error('body shorter than the aes128gcm header');
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  const senderKey = body.subarray(21, 21 + idlen);
  if (idlen !== 65) throw new Error('keyid must be the 65-byte sender public key');
  const records = body.subarray(21 + idlen);
  if (records.length > rs) throw new Error('only single-record messages are expected');
  const uaPublic = ecdh.getPublicKey();
  const secret = ecdh.computeSecret(senderKey);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, senderKey]);
  const ikm = Buffer.from(hkdfSync('sha256', secret, auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(records.subarray(records.length - 16));
  const padded = Buffer.concat([decipher.update(records.subarray(0, records.length - 16)), decipher.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== 2) throw new Error('last record must end with the 0x02 delimiter');
  return padded.subarray(0, end);
}
