import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { FcmSender } from '../senders/fcm.js';
import { CREDENTIALS_REFUSED_MS } from '../senders/oauth-token.js';
import type { PushJob } from '../senders/types.js';
import type { VendorClientOptions } from '../senders/vendor-http.js';
import { startFcmServer, type FcmServer } from './vendors/fcm-server.js';

const job = (over: Partial<ChatMessage> = {}, token = 'fcm-token-1'): PushJob => ({
  jobId: 'm1:d1', user: 'u1', device: 'd1', vendor: 'fcm', token,
  message: { id: 'm1', to: 'u1', from: 'alice', title: 'Alice', text: 'hello', data: { room: 'r1' }, collapseKey: 'room-r1', priority: 'high', ttlSeconds: 60, acceptedAt: Date.now(), ...over },
});

type Sent = { message: { token: string; notification?: { title?: string; body?: string }; data: Record<string, string>; android: Record<string, string> } };
const claims = (assertion: string) => JSON.parse(Buffer.from(assertion.split('.')[1], 'base64url').toString()) as Record<string, unknown>;

describe('FCM HTTP v1 sender against the local FCM', () => {
  let server: FcmServer | undefined;
  let sender: FcmSender | undefined;
  afterEach(async () => {
    await sender?.close();
    await server?.close();
    sender = server = undefined;
  });

  async function start(options: VendorClientOptions = {}, tls = false): Promise<{ server: FcmServer; sender: FcmSender }> {
    server = await startFcmServer({ tls });
    sender = new FcmSender({ serviceAccountFile: server.serviceAccountFile, endpoint: server.origin }, { ...(server.ca ? { ca: server.ca } : {}), ...options });
    return { server, sender };
  }

  it('exchanges a signed service-account assertion for a token and sends the v1 request (section 5)', async () => {
    const { server, sender } = await start();
    const outcome = await sender.send(job());
    expect(outcome).toMatchObject({ outcome: 'ok', vendorId: expect.stringMatching(/^projects\/switchboard-test\/messages\//) });

    const [tokenReq] = server.tokenRequests();
    expect(tokenReq.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const form = tokenReq.parsed as Record<string, string>;
    expect(form.grant_type).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
    expect(claims(form.assertion)).toMatchObject({ iss: server.clientEmail, scope: 'https://www.googleapis.com/auth/firebase.messaging', aud: `${server.origin}/token` });

    const [send] = server.sends();
    expect(send.path).toBe('/v1/projects/switchboard-test/messages:send');
    expect(send.headers.authorization).toMatch(/^Bearer ya29\./);
    expect(send.headers['content-type']).toMatch(/^application\/json/);
    expect(send.parsed).toEqual({
      message: {
        token: 'fcm-token-1',
        notification: { title: 'Alice', body: 'hello' },
        data: { room: 'r1', messageId: 'm1', sender: 'alice' },
        android: { priority: 'high', collapse_key: 'room-r1', ttl: '60s' },
      },
    });
  });

  it('sends as android.ttl only what is left of the TTL counted from the acceptance (a message held 50 s of its 60)', async () => {
    const { server, sender } = await start();
    expect(await sender.send(job({ acceptedAt: Date.now() - 50_000, ttlSeconds: 60 }))).toMatchObject({ outcome: 'ok' });
    expect((server.sends()[0].parsed as { message: { android: { ttl: string } } }).message.android.ttl).toBe('10s');
  });

  it('keeps a data message (no title, no text) a data message in quiet hours: no android.notification, which would make it a notification message', async () => {
    const { server, sender } = await start();
    const dataOnly = { ...job({ title: undefined, text: undefined }), silent: true as const, badge: 2 };
    expect(await sender.send(dataOnly)).toMatchObject({ outcome: 'ok' });
    expect(await sender.send({ ...job(), silent: true })).toMatchObject({ outcome: 'ok' });
    const [data, alert] = server.sends().map((r) => (r.parsed as { message: { notification?: unknown; android: { notification?: unknown } } }).message);
    expect(data.notification).toBeUndefined();
    expect(data.android.notification).toBeUndefined();
    expect(alert.android.notification).toEqual({ notification_priority: 'PRIORITY_MIN', default_sound: false });
  });

  it('reaches an https endpoint whose certificate a private CA signed', async () => {
    const { server, sender } = await start({}, true);
    expect(server.origin).toMatch(/^https:/);
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
  });

  it('fails with a hint, rather than retrying, when the endpoint certificate is not trusted', async () => {
    server = await startFcmServer({ tls: true });
    sender = new FcmSender({ serviceAccountFile: server.serviceAccountFile, endpoint: server.origin });
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('NODE_EXTRA_CA_CERTS') });
  });

  it('sends only strings as data, omits what the message lacks, and keeps our messageId over the chat server data', async () => {
    const { server, sender } = await start();
    await sender.send(job({ title: undefined, from: undefined, collapseKey: undefined, ttlSeconds: undefined, priority: 'normal', data: { messageId: 'spoof', sender: 'spoof', n: '1' } }));
    const sent = server.sends()[0].parsed as Sent;
    expect(sent.message.notification).toEqual({ body: 'hello' });
    expect(sent.message.data).toEqual({ messageId: 'm1', n: '1' });
    expect(sent.message.android).toEqual({ priority: 'normal' });
    expect(Object.values(sent.message.data).every((v) => typeof v === 'string')).toBe(true);
  });

  it.each([
    ['unregistered', 'dead_token', 'UNREGISTERED'],
    ['invalid_token', 'dead_token', 'not a valid FCM registration token'],
    ['invalid_argument', 'failed', 'message.android.ttl'],
    ['sender_id_mismatch', 'failed', 'SENDER_ID_MISMATCH'],
    ['quota_exceeded', 'retry', 'QUOTA_EXCEEDED'],
    ['internal', 'retry', 'INTERNAL'],
    ['unavailable', 'retry', 'UNAVAILABLE'],
    ['drop', 'retry', 'fcm unreachable'],
  ] as const)('maps %s to %s', async (answer, outcome, reason) => {
    const { server, sender } = await start();
    server.setBehavior({ answer });
    expect(await sender.send(job())).toMatchObject({ outcome, reason: expect.stringContaining(reason) });
  });

  it('reports a token FCM no longer knows as dead', async () => {
    const { server, sender } = await start();
    server.unregister('gone-token');
    expect(await sender.send(job({}, 'gone-token'))).toMatchObject({ outcome: 'dead_token' });
    expect(await sender.send(job({}, 'live-token'))).toMatchObject({ outcome: 'ok' });
  });

  it('surfaces Retry-After of 429 and 503 as retryAfterMs', async () => {
    const { server, sender } = await start();
    server.setBehavior({ answer: 'quota_exceeded', retryAfterSeconds: 30 });
    expect(await sender.send(job())).toMatchObject({ outcome: 'retry', retryAfterMs: 30_000 });
    server.setBehavior({ answer: 'unavailable', retryAfterSeconds: 7 });
    expect(await sender.send(job())).toMatchObject({ outcome: 'retry', retryAfterMs: 7_000 });
    server.setBehavior({ answer: 'internal' });
    const noHint = await sender.send(job());
    expect(noHint.outcome).toBe('retry');
    expect(noHint).not.toHaveProperty('retryAfterMs');
  });

  it('gives up on a slow FCM after its timeout and asks for a retry', async () => {
    const { server, sender } = await start({ timeoutMs: 200 });
    await sender.send(job()); // the token exchange is not what is slow
    server.setBehavior({ answer: 'ok', delayMs: 10_000 });
    expect(await sender.send(job())).toMatchObject({ outcome: 'retry', reason: expect.stringContaining('no answer within 200 ms') });
  });

  it('shortens an oversize text on a character boundary so notification and data fit 4096 bytes', async () => {
    const { server, sender } = await start();
    const text = 'é😀'.repeat(3000);
    expect(await sender.send(job({ text }))).toMatchObject({ outcome: 'ok' });
    const [send] = server.sends();
    const { notification, data } = (send.parsed as Sent).message;
    expect(Buffer.byteLength(JSON.stringify({ notification, data }))).toBeLessThanOrEqual(4096);
    const body = (send.parsed as Sent).message.notification!.body!;
    expect(body.endsWith('…')).toBe(true);
    expect(text.startsWith(body.slice(0, -1))).toBe(true);
    expect(body.length).toBeGreaterThan(1000);
  });

  it('reuses one access token across concurrent and later sends', async () => {
    const { server, sender } = await start();
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map((n) => sender.send(job({ id: `m${n}` }))));
    expect(outcomes.every((o) => o.outcome === 'ok')).toBe(true);
    expect(await sender.send(job({ id: 'm6' }))).toMatchObject({ outcome: 'ok' });
    expect(server.tokenRequests()).toHaveLength(1);
    expect(new Set(server.sends().map((s) => s.headers.authorization)).size).toBe(1);
  });

  it('exchanges a new token shortly before the old one expires', async () => {
    let offsetMs = 0;
    const { server, sender } = await start({ now: () => Date.now() + offsetMs });
    server.setTokenLifetime(120);
    await sender.send(job());
    offsetMs = 30_000;
    await sender.send(job());
    expect(server.tokenRequests()).toHaveLength(1);
    offsetMs = 61_000; // past expiry minus the refresh margin (half of a 120 s lifetime)
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
    expect(server.tokenRequests()).toHaveLength(2);
    expect(sender.tokenFetches).toBe(2);
    expect(server.connections()).toBe(1); // token exchanges and sends share one keep-alive connection
  });

  it('refreshes the token once on 401 and resends', async () => {
    const { server, sender } = await start();
    await sender.send(job());
    server.revokeTokens();
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
    expect(server.tokenRequests()).toHaveLength(2);
    expect(server.sends().map((s) => s.answer)).toEqual([200, 401, 200]);
  });

  it('fails instead of looping when FCM refuses even a fresh token, and asks again only after CREDENTIALS_REFUSED_MS', async () => {
    let now = Date.now();
    const { server, sender } = await start({ now: () => now });
    server.setBehavior({ answer: 'unauthenticated' });
    // A configuration error (the pool logs it once a minute), as APNs InvalidProviderToken.
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', config: true, reason: expect.stringContaining('401') });
    expect(server.sends()).toHaveLength(2);
    const exchanges = server.tokenRequests().length;
    // Under load a revoked key must not cost a token request and two sends per push: the refusal is kept a while.
    for (let i = 0; i < 5; i++) expect(await sender.send(job())).toMatchObject({ outcome: 'failed', config: true });
    expect(server.sends()).toHaveLength(2);
    expect(server.tokenRequests()).toHaveLength(exchanges);
    // Fixed meanwhile (the service account got its role): tried again once the time is up.
    server.setBehavior({ answer: 'ok' });
    now += CREDENTIALS_REFUSED_MS;
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
  });

  it('reports a refused token exchange as failed and an unavailable one as retry', async () => {
    let now = Date.now();
    const { server, sender } = await start({ now: () => now });
    server.setTokenAnswer('invalid_grant');
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', config: true, reason: expect.stringContaining('invalid_grant') });
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', config: true }); // kept: no second token request
    expect(server.tokenRequests()).toHaveLength(1);
    now += CREDENTIALS_REFUSED_MS;
    server.setTokenAnswer('unavailable');
    expect(await sender.send(job())).toMatchObject({ outcome: 'retry' });
    server.setTokenAnswer('ok');
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
    expect(server.sends()).toHaveLength(1);
  });

  it('fails with the reason when the service-account file is unusable', async () => {
    sender = new FcmSender({ serviceAccountFile: '/nonexistent/sa.json', endpoint: 'http://127.0.0.1:9' });
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('/nonexistent/sa.json') });
  });

  it('passes on what the local FCM rejects in a body (reserved data keys) as failed', async () => {
    const { sender } = await start();
    for (const key of ['from', 'message_type', 'notification', 'google.x', 'gcm.notification.title', 'gcm.x']) {
      expect(await sender.send(job({ data: { [key]: '1' } }))).toMatchObject({ outcome: 'failed', reason: expect.stringContaining(`400 INVALID_ARGUMENT: Invalid data payload key: ${key}`) });
    }
  });

  it('puts the sender in data.sender: FCM refuses the reserved data.from of the v1.0 body with 400 INVALID_ARGUMENT (PROTOCOL.md section 5)', async () => {
    const { server, sender } = await start();
    expect(await sender.send(job({ from: 'alice' }))).toMatchObject({ outcome: 'ok' });
    const sent = server.sends()[0].parsed as Sent;
    expect(sent.message.data.sender).toBe('alice');
    expect(sent.message.data).not.toHaveProperty('from');
    // What the sender used to send: the stand-in, like FCM, refuses it.
    const oldBody = { message: { ...sent.message, data: { ...sent.message.data, from: 'alice' } } };
    delete (oldBody.message.data as Record<string, string>).sender;
    const tokenRes = await fetch(`${server.origin}/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(server.tokenRequests()[0].parsed as Record<string, string>).toString(),
    });
    const { access_token: accessToken } = await tokenRes.json() as { access_token: string };
    const res = await fetch(`${server.origin}/v1/projects/${server.projectId}/messages:send`, {
      method: 'POST', headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify(oldBody),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { status: 'INVALID_ARGUMENT', message: 'Invalid data payload key: from' } });
  });
});
