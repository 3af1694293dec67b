import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderTokenVerifier } from './apns-provider-token.js';
import { testTls } from './test-tls.js';

/**
 * A local APNs stand-in speaking Apple's wire protocol (HTTP/2 over TLS, token auth), for sender tests and the
 * benchmark. It checks what Apple checks, records every request, and answers as told per device token or
 * globally: Apple's errors, slow answers, reset streams, dropped connections. As strict as Apple (reasons from
 * "Handling notification responses from APNs"):
 * - 403 ExpiredProviderToken for a provider token whose `iat` is over an hour old, by the server's clock
 *   ("Establishing a token-based connection to APNs": "APNs rejects any request whose token contains a timestamp
 *   that is more than one hour old");
 * - 429 TooManyProviderTokenUpdates for a new provider token on a connection less than 20 minutes after the previous
 *   new one (same page: "APNs reports an error if you recreate your tokens more than once every 20 minutes"; the
 *   error is per connection, as Apple's engineers describe it on the developer forums), except right after this
 *   connection was answered ExpiredProviderToken;
 * - 413 PayloadTooLarge over 4096 bytes ("Generating a remote notification": "the maximum payload size is 4 KB");
 * - GOAWAY now and then ("Sending notification requests to APNs": "If APNs decides to terminate an established
 *   HTTP/2 connection, it sends a GOAWAY frame"), with a JSON `reason`: requests above its last-stream-id are refused.
 */

export interface ApnsServerOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients, like Apple's. Default 1000. */
  maxConcurrentStreams?: number;
  /** Expected `apns-topic`. Default `com.example.switchboard`. */
  topic?: string;
  /** Expected `kid` of the provider token. Default `TESTKEY123`. */
  keyId?: string;
  /** Expected `iss` of the provider token. Default `TESTTEAM45`. */
  teamId?: string;
  /** The server's clock (epoch ms) for token age and token updates; tests pass a manual one. Default Date.now. */
  now?: () => number;
  /** A connection is sent GOAWAY after this many requests (0 = never). Default DEFAULT_GOAWAY_EVERY. */
  goawayEvery?: number;
}

/** Requests per connection before the stand-in sends GOAWAY, so every long test meets one. */
export const DEFAULT_GOAWAY_EVERY = 1000;
/** Apple's shortest interval between two new provider tokens on a connection. */
const TOKEN_UPDATE_INTERVAL_MS = 20 * 60_000;

/** What to do with a request once it has passed Apple's checks. `delayMs` holds the answer back that long. */
export type ApnsBehavior =
  | { type: 'ok'; delayMs?: number }
  | { type: 'error'; status: number; reason: string; retryAfter?: string; timestamp?: number; delayMs?: number }
  /** Destroys the whole connection (TLS session) without answering. */
  | { type: 'drop'; delayMs?: number }
  /** RST_STREAM on this request only. */
  | { type: 'reset'; delayMs?: number };

/** Apple's answers by name. */
export const apnsAnswers = {
  ok: (): ApnsBehavior => ({ type: 'ok' }),
  unregistered: (timestamp = Date.now()): ApnsBehavior => ({ type: 'error', status: 410, reason: 'Unregistered', timestamp }),
  badDeviceToken: (): ApnsBehavior => ({ type: 'error', status: 400, reason: 'BadDeviceToken' }),
  deviceTokenNotForTopic: (): ApnsBehavior => ({ type: 'error', status: 400, reason: 'DeviceTokenNotForTopic' }),
  tooManyRequests: (retryAfterSeconds?: number): ApnsBehavior =>
    ({ type: 'error', status: 429, reason: 'TooManyRequests', retryAfter: retryAfterSeconds === undefined ? undefined : String(retryAfterSeconds) }),
  internalServerError: (): ApnsBehavior => ({ type: 'error', status: 500, reason: 'InternalServerError' }),
  serviceUnavailable: (retryAfterSeconds?: number): ApnsBehavior =>
    ({ type: 'error', status: 503, reason: 'ServiceUnavailable', retryAfter: retryAfterSeconds === undefined ? undefined : String(retryAfterSeconds) }),
  expiredProviderToken: (): ApnsBehavior => ({ type: 'error', status: 403, reason: 'ExpiredProviderToken' }),
  slow: (delayMs: number): ApnsBehavior => ({ type: 'ok', delayMs }),
  drop: (): ApnsBehavior => ({ type: 'drop' }),
  reset: (): ApnsBehavior => ({ type: 'reset' }),
};

export interface RecordedApnsRequest {
  /** Device token from `:path`. */
  token: string;
  headers: Record<string, string>;
  body: string;
  /** Which connection carried it (1, 2, ... in order of TLS handshakes). */
  session: number;
  /** The status sent, or what was done instead. */
  answer: number | 'drop' | 'reset';
  /** Apple's reason for an error answer. */
  reason?: string;
}

export interface ApnsServerStats {
  /** Connections (TLS sessions) accepted so far. */
  sessions: number;
  activeStreams: number;
  /** Most streams open at once, over all connections / on any one connection. */
  maxActiveStreams: number;
  maxActiveStreamsPerSession: number;
  /** Session and stream errors other than a client cancelling its own request. */
  errors: string[];
  /** GOAWAY frames sent. */
  goaways: number;
}

export interface ApnsServer {
  /** `https://127.0.0.1:<port>`, for ApnsCredentials.endpoint. */
  origin: string;
  port: number;
  /** The test CA: pass `caPem` as the sender's `ca`, or `caFile` as NODE_EXTRA_CA_CERTS to a child process. */
  caPem: string;
  caFile: string;
  keyId: string;
  teamId: string;
  /** The .p8 (PKCS#8 PEM, P-256) provider key the server verifies tokens against. */
  keyFile: string;
  topic: string;
  maxConcurrentStreams: number;
  requests: RecordedApnsRequest[];
  /** Answer requests (for `token`, or all) this way, for the next `times` of them or until changed. */
  setBehavior(behavior: ApnsBehavior, scope?: { token?: string; times?: number }): void;
  resetBehavior(): void;
  /** Resolves once at least `n` requests were recorded. */
  waitForRequests(n: number): Promise<void>;
  stats(): ApnsServerStats;
  /** Clears the maxima and errors (the session count keeps counting). */
  resetStats(): void;
  close(): Promise<void>;
}

/** Apple's limit on the JSON payload of an alert. */
const MAX_PAYLOAD_BYTES = 4096;
const PUSH_TYPES = new Set(['alert', 'background', 'location', 'voip', 'complication', 'fileprovider', 'mdm', 'liveactivity', 'pushtotalk', 'widgets']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Rule { behavior: ApnsBehavior; remaining: number }

export async function startApnsServer(opts: ApnsServerOptions = {}): Promise<ApnsServer> {
  const tls = testTls();
  const topic = opts.topic ?? 'com.example.switchboard';
  const keyId = opts.keyId ?? 'TESTKEY123';
  const teamId = opts.teamId ?? 'TESTTEAM45';
  const maxConcurrentStreams = opts.maxConcurrentStreams ?? 1000;
  const now = opts.now ?? Date.now;
  const goawayEvery = opts.goawayEvery ?? DEFAULT_GOAWAY_EVERY;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyDir = mkdtempSync(join(tmpdir(), 'switchboard-apns-key-'));
  const keyFile = join(keyDir, `AuthKey_${keyId}.p8`);
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const verifier = new ProviderTokenVerifier(publicKey, keyId, teamId, now);
  // Per connection: provider tokens seen on it, when the last new one came, and whether it was just told "expired".
  const tokenUpdates = new WeakMap<Http2Session, { seen: Set<string>; changedAt: number; expiredSaid: boolean }>();
  // Per connection: requests received, and the stream ids above a GOAWAY's last-stream-id (refused, not errors).
  const received = new WeakMap<Http2Session, number>();
  const refusedAbove = new WeakMap<Http2Session, number>();

  const requests: RecordedApnsRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const byToken = new Map<string, Rule>();
  let global: Rule | undefined;
  const sessionIds = new WeakMap<Http2Session, number>();
  const perSession = new Map<number, number>();
  const openSessions = new Set<Http2Session>();
  const timers = new Set<NodeJS.Timeout>();
  // Streams this server reset or dropped on purpose: their errors are the test's doing, not protocol errors.
  const ended = new WeakSet<ServerHttp2Stream>();
  const stats: ApnsServerStats = { sessions: 0, activeStreams: 0, maxActiveStreams: 0, maxActiveStreamsPerSession: 0, errors: [], goaways: 0 };

  const server = http2.createSecureServer({ key: tls.keyPem, cert: tls.certPem, settings: { maxConcurrentStreams } });
  server.on('session', (session) => {
    const id = ++stats.sessions;
    sessionIds.set(session, id);
    perSession.set(id, 0);
    openSessions.add(session);
    session.on('close', () => openSessions.delete(session));
    session.on('error', (err) => stats.errors.push(`session ${id}: ${err.message}`));
  });
  server.on('stream', (stream, headers) => {
    const conn = stream.session!;
    const session = sessionIds.get(conn) ?? 0;
    stats.activeStreams++;
    stats.maxActiveStreams = Math.max(stats.maxActiveStreams, stats.activeStreams);
    const mine = perSession.get(session)! + 1;
    perSession.set(session, mine);
    stats.maxActiveStreamsPerSession = Math.max(stats.maxActiveStreamsPerSession, mine);
    stream.on('close', () => {
      stats.activeStreams--;
      perSession.set(session, perSession.get(session)! - 1);
    });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      const refused = (stream.id ?? 0) > (refusedAbove.get(conn) ?? Infinity) && /REFUSED_STREAM/.test(err.message);
      if (!ended.has(stream) && !refused && !/CANCEL/.test(err.message)) stats.errors.push(`stream: ${err.message}`);
    });
    const count = (received.get(conn) ?? 0) + 1;
    received.set(conn, count);
    if (goawayEvery > 0 && count === goawayEvery) goaway(stream);
    readBody(stream, (body, tooLarge) => handle(stream, headers, body, tooLarge, session, conn));
  });

  /** Ends the connection gracefully after `last`: later streams are refused, earlier ones are answered. */
  function goaway(last: ServerHttp2Stream): void {
    const session = last.session!;
    refusedAbove.set(session, last.id!);
    stats.goaways++;
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, last.id!, Buffer.from(JSON.stringify({ reason: 'Shutdown' })));
    session.close();
  }

  function handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, body: string, tooLarge: boolean, session: number, conn: Http2Session): void {
    const path = String(headers[':path'] ?? '');
    const token = /^\/3\/device\/([^/?]+)$/.exec(path)?.[1] ?? '';
    const rejection = check(headers, path, token, body, tooLarge, conn);
    const behavior = rejection ?? pick(token);
    // Apple's exception: after ExpiredProviderToken the provider signs a new token at once.
    if (behavior.type === 'error' && behavior.reason === 'ExpiredProviderToken') updatesOf(conn).expiredSaid = true;
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : String(v);
    requests.push({
      token, headers: flat, body, session, answer: behavior.type === 'ok' ? 200 : behavior.type === 'error' ? behavior.status : behavior.type,
      ...(behavior.type === 'error' ? { reason: behavior.reason } : {}),
    });
    for (const w of waiters.filter((x) => requests.length >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    const apnsId = typeof headers['apns-id'] === 'string' ? headers['apns-id'] : randomUUID();
    const act = () => answer(stream, behavior, apnsId);
    if (!behavior.delayMs) return act();
    const t = setTimeout(() => {
      timers.delete(t);
      act();
    }, behavior.delayMs);
    timers.add(t);
  }

  function updatesOf(session: Http2Session): { seen: Set<string>; changedAt: number; expiredSaid: boolean } {
    let u = tokenUpdates.get(session);
    if (!u) tokenUpdates.set(session, (u = { seen: new Set(), changedAt: Number.NEGATIVE_INFINITY, expiredSaid: false }));
    return u;
  }

  /** 429 TooManyProviderTokenUpdates: a new provider token on this connection within 20 minutes of the last new one. */
  function tokenUpdateProblem(authorization: string | undefined, session: Http2Session): string | undefined {
    const jwt = String(authorization);
    const u = updatesOf(session);
    if (u.seen.has(jwt)) return undefined;
    if (u.seen.size > 0 && !u.expiredSaid && now() - u.changedAt < TOKEN_UPDATE_INTERVAL_MS) return 'TooManyProviderTokenUpdates';
    u.seen.add(jwt);
    u.changedAt = now();
    u.expiredSaid = false;
    return undefined;
  }

  /** Apple's request checks, in its order: method, path, provider token, topic, headers, payload. */
  function check(h: IncomingHttpHeaders, path: string, token: string, body: string, tooLarge: boolean, conn: Http2Session): ApnsBehavior | undefined {
    const err = (status: number, reason: string): ApnsBehavior => ({ type: 'error', status, reason });
    if (h[':method'] !== 'POST') return err(405, 'MethodNotAllowed');
    if (!path.startsWith('/3/device/')) return err(404, 'BadPath');
    if (!/^[0-9a-f]+$/i.test(token)) return err(400, 'BadDeviceToken');
    const tokenProblem = verifier.check(h.authorization);
    if (tokenProblem) return err(403, tokenProblem);
    const updateProblem = tokenUpdateProblem(h.authorization, conn);
    if (updateProblem) return err(429, updateProblem);
    if (!h['apns-topic']) return err(400, 'MissingTopic');
    if (h['apns-topic'] !== topic) return err(400, 'TopicDisallowed');
    if (h['apns-push-type'] !== undefined && !PUSH_TYPES.has(String(h['apns-push-type']))) return err(400, 'InvalidPushType');
    if (h['apns-priority'] !== undefined && !['1', '5', '10'].includes(String(h['apns-priority']))) return err(400, 'BadPriority');
    // Apple, "Sending notification requests to APNs", apns-push-type background: "Always use priority 5. Using
    // priority 10 is an error."
    if (h['apns-push-type'] === 'background' && String(h['apns-priority']) === '10') return err(400, 'BadPriority');
    if (h['apns-id'] !== undefined && !UUID.test(String(h['apns-id']))) return err(400, 'BadMessageId');
    if (h['apns-collapse-id'] !== undefined && Buffer.byteLength(String(h['apns-collapse-id'])) > 64) return err(400, 'BadCollapseId');
    if (h['apns-expiration'] !== undefined && !/^\d+$/.test(String(h['apns-expiration']))) return err(400, 'BadExpirationDate');
    if (tooLarge || Buffer.byteLength(body) > MAX_PAYLOAD_BYTES) return err(413, 'PayloadTooLarge');
    if (body.length === 0) return err(400, 'PayloadEmpty');
    try {
      JSON.parse(body);
    } catch {
      return err(400, 'BadPayload');
    }
    return undefined;
  }

  function pick(token: string): ApnsBehavior {
    const own = byToken.get(token);
    const rule = own ?? global;
    if (!rule) return { type: 'ok' };
    if (--rule.remaining <= 0) {
      if (own) byToken.delete(token);
      else global = undefined;
    }
    return rule.behavior;
  }

  function answer(stream: ServerHttp2Stream, behavior: ApnsBehavior, apnsId: string): void {
    if (stream.destroyed || stream.closed) return;
    switch (behavior.type) {
      case 'ok':
        stream.respond({ ':status': 200, 'apns-id': apnsId }, { endStream: true });
        return;
      case 'error': {
        const headers: Record<string, string | number> = { ':status': behavior.status, 'apns-id': apnsId, 'content-type': 'application/json' };
        if (behavior.retryAfter !== undefined) headers['retry-after'] = behavior.retryAfter;
        stream.respond(headers);
        stream.end(JSON.stringify(behavior.timestamp === undefined ? { reason: behavior.reason } : { reason: behavior.reason, timestamp: behavior.timestamp }));
        return;
      }
      case 'drop':
        ended.add(stream);
        stream.session?.destroy();
        return;
      case 'reset':
        ended.add(stream);
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    origin: `https://127.0.0.1:${port}`,
    port,
    caPem: tls.caPem,
    caFile: tls.caFile,
    keyId,
    teamId,
    keyFile,
    topic,
    maxConcurrentStreams,
    requests,
    setBehavior(behavior, scope = {}) {
      const rule = { behavior, remaining: scope.times ?? Number.POSITIVE_INFINITY };
      if (scope.token !== undefined) byToken.set(scope.token, rule);
      else global = rule;
    },
    resetBehavior() {
      byToken.clear();
      global = undefined;
    },
    waitForRequests(n) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    stats: () => ({ ...stats, errors: [...stats.errors] }),
    resetStats() {
      stats.maxActiveStreams = stats.activeStreams;
      stats.maxActiveStreamsPerSession = 0;
      stats.errors.length = 0;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of openSessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(keyDir, { recursive: true, force: true });
    },
  };
}

/** Reads a request body, stopping at 64 KiB (anything over 4096 bytes is refused anyway). */
function readBody(stream: ServerHttp2Stream, done: (body: string, tooLarge: boolean) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > 64 * 1024) tooLarge = true;
    else chunks.push(chunk);
  });
  stream.on('end', () => done(tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge));
}
