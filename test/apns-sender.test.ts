import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { ApnsSender, apnsOutcome, parseRetryAfter, type ApnsSenderOptions } from '../senders/apns.js';
import type { PushJob } from '../senders/types.js';
import { apnsAnswers, startApnsServer, type ApnsServer } from './vendors/apns-server.js';

const TOKEN = 'a'.repeat(64);
const tokenN = (n: number) => n.toString(16).padStart(64, '0');
const job = (message: Partial<ChatMessage> = {}, token = TOKEN): PushJob => ({
  jobId: `${message.id ?? 'm1'}:d1`, user: 'u1', device: 'd1', vendor: 'apns', token,
  message: { id: 'm1', to: 'u1', from: 'alice', title: 'Alice', text: 'hello', data: { chat: 'c1' }, acceptedAt: Date.now(), ...message },
});

describe('ApnsSender against the local APNs stand-in', () => {
  let server: ApnsServer;
  let sender: ApnsSender | undefined;
  const make = (options: ApnsSenderOptions = {}, keyFile = server.keyFile) => {
    sender = new ApnsSender(
      { endpoint: server.origin, keyFile, keyId: server.keyId, teamId: server.teamId, topic: server.topic },
      { ca: server.caPem, ...options },
    );
    return sender;
  };

  beforeAll(async () => {
    server = await startApnsServer();
  });
  afterEach(async () => {
    await sender?.close();
    sender = undefined;
    server.resetBehavior();
    server.requests.length = 0;
    server.resetStats();
  });
  afterAll(async () => {
    await server.close();
  });

  it('sends an alert with the APNs headers and body, authorized by an ES256 provider token', async () => {
    const sent = job({ collapseKey: 'chat-c1', ttlSeconds: 600 });
    const outcome = await make().send(sent);
    expect(outcome).toEqual({ outcome: 'ok', vendorId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const [req] = server.requests;
    expect(req.token).toBe(TOKEN);
    expect(req.headers[':path']).toBe(`/3/device/${TOKEN}`);
    expect(req.headers[':method']).toBe('POST');
    expect(req.headers.authorization).toMatch(/^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    expect(req.headers['apns-topic']).toBe(server.topic);
    expect(req.headers['apns-push-type']).toBe('alert');
    expect(req.headers['apns-priority']).toBe('10');
    expect(req.headers['apns-collapse-id']).toBe('chat-c1');
    expect(req.headers['apns-id']).toBe((outcome as { vendorId: string }).vendorId);
    expect(req.headers['apns-expiration']).toBe(String(Math.ceil(sent.message.acceptedAt / 1000) + 600));
    expect(JSON.parse(req.body)).toEqual({ aps: { alert: { title: 'Alice', body: 'hello' } }, messageId: 'm1', sender: 'alice', data: { chat: 'c1' } });
    expect(req.answer).toBe(200);
  });

  it('maps priority normal to 5, ttlSeconds 0 to expiration 0, and leaves optional headers out when unset', async () => {
    const s = make();
    expect(await s.send(job({ priority: 'normal', ttlSeconds: 0 }))).toMatchObject({ outcome: 'ok' });
    expect(await s.send(job({ priority: 'high' }))).toMatchObject({ outcome: 'ok' });
    const [normal, high] = server.requests;
    expect(normal.headers['apns-priority']).toBe('5');
    expect(normal.headers['apns-expiration']).toBe('0');
    expect(high.headers['apns-priority']).toBe('10');
    expect(high.headers).not.toHaveProperty('apns-expiration');
    expect(high.headers).not.toHaveProperty('apns-collapse-id');
  });

  it('sets apns-expiration from the acceptance: a message held 50 s with a TTL of 60 s expires 10 s after the push', async () => {
    const now = Math.floor(Date.now() / 1000) * 1000; // the stand-in checks the provider token's iat by its own clock
    const s = make({ now: () => now });
    expect(await s.send(job({ ttlSeconds: 60, acceptedAt: now - 50_000 }))).toMatchObject({ outcome: 'ok' });
    expect(server.requests[0].headers['apns-expiration']).toBe(String(now / 1000 + 10));
  });

  it('keeps apns-collapse-id within 64 bytes for a multi-byte collapse key', async () => {
    expect(await make().send(job({ collapseKey: '€'.repeat(30) }))).toMatchObject({ outcome: 'ok' });
    expect(Buffer.byteLength(server.requests[0].headers['apns-collapse-id'])).toBeLessThanOrEqual(64);
  });

  it('shortens an oversize text on a character boundary with an ellipsis so the body fits 4096 bytes', async () => {
    const text = '😀'.repeat(3000);
    expect(await make().send(job({ text }))).toMatchObject({ outcome: 'ok' });
    const { body } = server.requests[0];
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(body)).toBeGreaterThan(4000);
    const alertBody = (JSON.parse(body) as { aps: { alert: { body: string } } }).aps.alert.body;
    expect(alertBody.endsWith('😀…')).toBe(true);
  });

  it.each([
    ['410 Unregistered', apnsAnswers.unregistered(1_700_000_000_000), 'apns 410 Unregistered since 2023-11-14T22:13:20.000Z'],
    ['400 BadDeviceToken', apnsAnswers.badDeviceToken(), 'apns 400 BadDeviceToken'],
  ])('reports %s as a dead token', async (_name, behavior, reason) => {
    server.setBehavior(behavior, { token: TOKEN });
    expect(await make().send(job())).toEqual({ outcome: 'dead_token', reason });
  });

  it('keeps a token APNs calls DeviceTokenNotForTopic: a failed push flagged as configuration (a wrong topic would otherwise delete every iOS token), not retried', async () => {
    server.setBehavior(apnsAnswers.deviceTokenNotForTopic(), { token: TOKEN });
    const outcome = await make().send(job());
    expect(outcome).toMatchObject({ outcome: 'failed', config: true });
    expect((outcome as { reason: string }).reason).toMatch(/^apns 400 DeviceTokenNotForTopic: the token is not for topic ".+" \(SWITCHBOARD_APNS_TOPIC/);
  });

  it('reports 429 TooManyRequests as retry with Retry-After in ms', async () => {
    server.setBehavior(apnsAnswers.tooManyRequests(7));
    expect(await make().send(job())).toEqual({ outcome: 'retry', reason: 'apns 429 TooManyRequests', retryAfterMs: 7000 });
  });

  it('reports 500 and 503 as retry', async () => {
    const s = make();
    server.setBehavior(apnsAnswers.serviceUnavailable(), { times: 1 });
    expect(await s.send(job())).toEqual({ outcome: 'retry', reason: 'apns 503 ServiceUnavailable' });
    server.setBehavior(apnsAnswers.internalServerError(), { times: 1 });
    expect(await s.send(job())).toEqual({ outcome: 'retry', reason: 'apns 500 InternalServerError' });
    expect(await s.send(job())).toMatchObject({ outcome: 'ok' });
  });

  it('reports other 4xx as failed with the reason', async () => {
    server.setBehavior({ type: 'error', status: 400, reason: 'BadTopic' });
    expect(await make().send(job())).toEqual({ outcome: 'failed', reason: 'apns 400 BadTopic' });
  });

  it('reports a dropped connection as retry, and the next send works on a new connection', async () => {
    const s = make();
    expect(await s.send(job())).toMatchObject({ outcome: 'ok' });
    server.setBehavior(apnsAnswers.drop(), { times: 1 });
    expect(await s.send(job())).toMatchObject({ outcome: 'retry' });
    expect(await s.send(job())).toMatchObject({ outcome: 'ok' });
    const [before, dropped, after] = server.requests.map((r) => r.session);
    expect(dropped).toBe(before);
    expect(after).not.toBe(before);
    expect(s.stats.connectionsOpened).toBe(2);
  });

  it('reports a reset stream as retry and keeps the connection', async () => {
    const s = make();
    server.setBehavior(apnsAnswers.reset(), { times: 1 });
    expect(await s.send(job())).toMatchObject({ outcome: 'retry' });
    expect(await s.send(job())).toMatchObject({ outcome: 'ok' });
    expect(s.stats.connectionsOpened).toBe(1);
  });

  it('reports an answer slower than the request timeout as retry', async () => {
    server.setBehavior(apnsAnswers.slow(30_000), { times: 1 });
    const s = make({ requestTimeoutMs: 200 });
    expect(await s.send(job())).toEqual({ outcome: 'retry', reason: 'apns: no answer within 200 ms' });
    expect(await s.send(job())).toMatchObject({ outcome: 'ok' });
  });

  it('reports an unreachable endpoint as retry', async () => {
    const s = new ApnsSender({ endpoint: 'https://127.0.0.1:1', keyFile: server.keyFile, keyId: server.keyId, teamId: server.teamId, topic: server.topic });
    sender = s;
    expect(await s.send(job())).toMatchObject({ outcome: 'retry', reason: expect.stringContaining('ECONNREFUSED') });
  });

  it('refreshes the provider token after ExpiredProviderToken and resends once', async () => {
    server.setBehavior(apnsAnswers.expiredProviderToken(), { times: 1 });
    expect(await make().send(job())).toMatchObject({ outcome: 'ok' });
    const [first, second] = server.requests;
    expect(first.answer).toBe(403);
    expect(second.answer).toBe(200);
    expect(second.headers.authorization).not.toBe(first.headers.authorization);
    expect(second.headers['apns-id']).toBe(first.headers['apns-id']);
  });

  it('fails at once on InvalidProviderToken, naming key id and team id, without signing again or retrying (section 5)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'apns-wrong-key-'));
    const wrongKey = join(dir, 'wrong.p8');
    writeFileSync(wrongKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    try {
      const s = make({}, wrongKey);
      for (let i = 0; i < 4; i++) {
        const outcome = await s.send(job({ id: `bad${i}` }));
        expect(outcome).toMatchObject({ outcome: 'failed', config: true, reason: expect.stringContaining('apns 403 InvalidProviderToken') });
        expect(outcome).toMatchObject({ reason: expect.stringContaining(`key id ${server.keyId} for team id ${server.teamId}`) });
        expect(JSON.stringify(outcome)).not.toMatch(/BEGIN|PRIVATE|bearer|ey[A-Za-z0-9_-]{20}/);
      }
      // One request per push, one token for all of them (the old sender signed and sent twice per push, then retried).
      expect(server.requests.map((r) => r.answer)).toEqual([403, 403, 403, 403]);
      expect(s.tokensSigned).toBe(1);
      expect(new Set(server.requests.map((r) => r.headers.authorization)).size).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a missing key file as failed, naming the file but no key material', async () => {
    expect(await make({}, '/nonexistent/AuthKey.p8').send(job())).toEqual({
      outcome: 'failed', reason: 'cannot read the APNs key file /nonexistent/AuthKey.p8: ENOENT',
    });
  });

  it('rejects a server certificate not signed by a trusted CA (no ca option, no NODE_EXTRA_CA_CERTS)', async () => {
    const s = new ApnsSender({ endpoint: server.origin, keyFile: server.keyFile, keyId: server.keyId, teamId: server.teamId, topic: server.topic });
    sender = s;
    expect(await s.send(job())).toMatchObject({ outcome: 'retry', reason: expect.stringMatching(/certificate/i) });
    expect(server.requests).toHaveLength(0);
  });

  it('reuses one connection for many sends', async () => {
    const s = make();
    const sessionsBefore = server.stats().sessions;
    for (let i = 0; i < 20; i++) expect(await s.send(job({ id: `seq${i}` }))).toMatchObject({ outcome: 'ok' });
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, i) => s.send(job({ id: `par${i}` }, tokenN(i)))));
    expect(outcomes.every((o) => o.outcome === 'ok')).toBe(true);
    expect(server.stats().sessions - sessionsBefore).toBe(1);
    expect(new Set(server.requests.map((r) => r.session)).size).toBe(1);
  });

  it('holds requests beyond the per-connection cap until a stream frees up', async () => {
    server.setBehavior(apnsAnswers.slow(20));
    const s = make({ maxConnections: 1, maxStreamsPerConnection: 50 });
    const sessionsBefore = server.stats().sessions;
    const pending = Promise.all(Array.from({ length: 300 }, (_, i) => s.send(job({ id: `cap${i}` }, tokenN(i)))));
    await server.waitForRequests(50);
    expect(s.stats).toMatchObject({ inFlight: 50, queued: 250 });
    expect((await pending).every((o) => o.outcome === 'ok')).toBe(true);
    expect(server.stats().maxActiveStreamsPerSession).toBe(50);
    expect(server.stats().sessions - sessionsBefore).toBe(1);
  });

  it('honours a server stream limit lower than its own cap', async () => {
    const small = await startApnsServer({ maxConcurrentStreams: 10 });
    const s = new ApnsSender({ endpoint: small.origin, keyFile: small.keyFile, keyId: small.keyId, teamId: small.teamId, topic: small.topic },
      { ca: small.caPem, maxConnections: 1 });
    try {
      small.setBehavior(apnsAnswers.slow(5));
      await s.send(job());
      const outcomes = await Promise.all(Array.from({ length: 200 }, (_, i) => s.send(job({ id: `small${i}` }, tokenN(i)))));
      expect(outcomes.every((o) => o.outcome === 'ok')).toBe(true);
      expect(small.stats()).toMatchObject({ maxActiveStreamsPerSession: 10, errors: [] });
    } finally {
      await s.close();
      await small.close();
    }
  });

  it('keeps 5,000 pushes sent at once within the stream cap, without protocol errors', async () => {
    const s = make({ maxStreamsPerConnection: server.maxConcurrentStreams });
    const n = 5000;
    const started = performance.now();
    const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => s.send(job({ id: `bulk${i}` }, tokenN(i)))));
    const ms = performance.now() - started;
    const stats = server.stats();
    console.info(`apns: ${n} pushes in ${ms.toFixed(0)} ms (${Math.round(n / (ms / 1000))}/s), ` +
      `${s.stats.connectionsOpened} connections, max ${stats.maxActiveStreamsPerSession} streams per connection`);
    expect(outcomes.filter((o) => o.outcome !== 'ok')).toEqual([]);
    expect(server.requests).toHaveLength(n);
    expect(new Set(server.requests.map((r) => r.token)).size).toBe(n);
    expect(stats.maxActiveStreamsPerSession).toBeLessThanOrEqual(server.maxConcurrentStreams);
    expect(stats.errors).toEqual([]);
    expect(s.stats).toMatchObject({ inFlight: 0, queued: 0 });
  });
});

describe('apnsOutcome and parseRetryAfter', () => {
  const answer = (status: number, body = '', headers: Record<string, string> = {}) => ({ kind: 'answer' as const, status, headers, body });

  it('maps Apple answers to outcomes', () => {
    expect(apnsOutcome(answer(200, '', { 'apns-id': 'x' }), 0)).toEqual({ outcome: 'ok', vendorId: 'x' });
    expect(apnsOutcome(answer(410, '{"reason":"ExpiredToken"}'), 0)).toEqual({ outcome: 'dead_token', reason: 'apns 410 ExpiredToken' });
    expect(apnsOutcome(answer(400, '{"reason":"BadCollapseId"}'), 0)).toEqual({ outcome: 'failed', reason: 'apns 400 BadCollapseId' });
    expect(apnsOutcome(answer(413, '{"reason":"PayloadTooLarge"}'), 0)).toEqual({ outcome: 'failed', reason: 'apns 413 PayloadTooLarge' });
    expect(apnsOutcome(answer(403, '{"reason":"MissingProviderToken"}'), 0)).toEqual({ outcome: 'failed', reason: 'apns 403 MissingProviderToken' });
    expect(apnsOutcome(answer(502, 'not json'), 0)).toEqual({ outcome: 'retry', reason: 'apns 502' });
    expect(apnsOutcome({ kind: 'lost', reason: 'stream closed (code 2)' }, 0)).toEqual({ outcome: 'retry', reason: 'apns: stream closed (code 2)' });
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
