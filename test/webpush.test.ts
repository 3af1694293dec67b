import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import type { PushJob } from '../senders/types.js';
import type { VendorClientOptions } from '../senders/vendor-http.js';
import { WEBPUSH_MAX_PLAINTEXT_BYTES, WebPushSender, webPushTopic } from '../senders/webpush.js';
import { startWebPushServer, type WebPushServer } from './vendors/webpush-server.js';

const job = (token: string, over: Partial<ChatMessage> = {}): PushJob => ({
  jobId: 'm1:d1', user: 'u1', device: 'd1', vendor: 'webpush', token,
  message: { id: 'm1', to: 'u1', from: 'alice', title: 'Alice', text: 'hello', data: { room: 'r1' }, collapseKey: 'room-r1', priority: 'high', ttlSeconds: 60, acceptedAt: Date.now(), ...over },
});

describe('Web Push sender against the local push service', () => {
  let server: WebPushServer | undefined;
  let sender: WebPushSender | undefined;
  afterEach(async () => {
    await sender?.close();
    await server?.close();
    sender = server = undefined;
  });

  async function start(options: VendorClientOptions = {}): Promise<{ server: WebPushServer; sender: WebPushSender; token: string }> {
    server = await startWebPushServer();
    // The stand-in listens on loopback: listed as an address, as SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS would list it.
    sender = new WebPushSender(server.creds, { ca: server.ca, allowedHosts: ['127.0.0.1'], ...options });
    return { server, sender, token: server.subscribe() };
  }

  it('encrypts the payload with aes128gcm, signs VAPID for the endpoint origin and sends TTL, Urgency and Topic', async () => {
    const { server, sender, token } = await start();
    expect(await sender.send(job(token))).toMatchObject({ outcome: 'ok', vendorId: expect.stringContaining(`${server.origin}/m/`) });

    const [req] = server.requests;
    expect(req.headers['content-encoding']).toBe('aes128gcm');
    expect(req.headers.authorization).toMatch(new RegExp(`^vapid t=[^,]+, k=${server.creds.vapidPublicKey}$`));
    expect(req.headers.ttl).toBe('60');
    expect(req.headers.urgency).toBe('high');
    expect(req.headers.topic).toBe('room-r1');
    expect(server.received).toHaveLength(1);
    expect(server.received[0].vapidSubject).toBe(server.creds.subject);
    expect(req.parsed).toEqual({ title: 'Alice', body: 'hello', messageId: 'm1', sender: 'alice', data: { room: 'r1' } });
  });

  it('sends as TTL only what is left of the TTL counted from the acceptance (a message held 50 s of its 60)', async () => {
    const { server, sender, token } = await start();
    expect(await sender.send(job(token, { acceptedAt: Date.now() - 50_000, ttlSeconds: 60 }))).toMatchObject({ outcome: 'ok' });
    expect(server.received[0].ttl).toBe(10);
  });

  it("carries the user's unread count as the alert's badge (section 4), never at the cost of text", async () => {
    const { server, sender, token } = await start();
    expect(await sender.send({ ...job(token), badge: 5 })).toMatchObject({ outcome: 'ok' });
    expect(JSON.parse(server.received[0].plaintext)).toMatchObject({ title: 'Alice', body: 'hello', badge: 5 });
    const text = 'x'.repeat(5000);
    expect(await sender.send({ ...job(token, { text }), badge: 7 })).toMatchObject({ outcome: 'ok' });
    expect(await sender.send(job(token, { text }))).toMatchObject({ outcome: 'ok' });
    const [withRoom, without] = server.received.slice(1).map((r) => JSON.parse(r.plaintext) as { body: string; badge?: number });
    expect(withRoom.body).toBe(without.body); // as long as without a badge
    expect(withRoom.badge).toBeUndefined();
  });

  it('sends normal urgency and turns a collapse key that is no valid topic into a 32-character one', async () => {
    const { server, sender, token } = await start();
    const collapseKey = 'room:42/with spaces and a rather long name';
    expect(await sender.send(job(token, { priority: 'normal', collapseKey }))).toMatchObject({ outcome: 'ok' });
    expect(server.requests[0].headers.urgency).toBe('normal');
    expect(server.requests[0].headers.topic).toBe(webPushTopic(collapseKey));
    expect(webPushTopic(collapseKey)).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(webPushTopic(collapseKey)).toBe(webPushTopic(collapseKey));
  });

  it('fails a token that is not a PushSubscription without sending', async () => {
    const { server, sender } = await start();
    for (const token of ['not json', '{"endpoint":"https://x.test/p"}', JSON.stringify({ endpoint: 'https://x.test/p', keys: { p256dh: 'AAAA', auth: 'AAAA' } })]) {
      expect(await sender.send(job(token))).toEqual({ outcome: 'failed', reason: 'invalid subscription' });
    }
    expect(server.requests).toHaveLength(0);
  });

  it.each([
    ['gone', 'dead_token', '410'],
    ['not_found', 'dead_token', '404'],
    ['too_many', 'retry', '429'],
    ['server_error', 'retry', '500'],
    ['unavailable', 'retry', '503'],
    ['bad_request', 'failed', '400'],
    ['too_large', 'failed', '413'],
    ['drop', 'retry', 'webpush unreachable'],
  ] as const)('maps %s to %s', async (answer, outcome, reason) => {
    const { server, sender, token } = await start();
    server.setBehavior({ answer });
    expect(await sender.send(job(token))).toMatchObject({ outcome, reason: expect.stringContaining(reason) });
  });

  it('reports an expired subscription as dead', async () => {
    const { server, sender, token } = await start();
    server.expire(token);
    expect(await sender.send(job(token))).toMatchObject({ outcome: 'dead_token' });
    expect(await sender.send(job(server.subscribe()))).toMatchObject({ outcome: 'ok' });
  });

  it('surfaces Retry-After as retryAfterMs', async () => {
    const { server, sender, token } = await start();
    server.setBehavior({ answer: 'too_many', retryAfterSeconds: 9 });
    expect(await sender.send(job(token))).toMatchObject({ outcome: 'retry', retryAfterMs: 9_000 });
  });

  it('gives up on a slow push service after its timeout', async () => {
    const { server, sender, token } = await start({ timeoutMs: 200 });
    server.setBehavior({ delayMs: 10_000 });
    expect(await sender.send(job(token))).toMatchObject({ outcome: 'retry' });
  });

  it('shortens an oversize text so the encrypted body fits 4096 bytes', async () => {
    const { server, sender, token } = await start();
    expect(await sender.send(job(token, { text: 'ü'.repeat(5000) }))).toMatchObject({ outcome: 'ok' });
    const [req] = server.requests;
    expect(req.raw.length).toBeLessThanOrEqual(4096);
    const plain = server.received[0].plaintext;
    expect(Buffer.byteLength(plain)).toBeLessThanOrEqual(WEBPUSH_MAX_PLAINTEXT_BYTES);
    expect((req.parsed as { body: string }).body.endsWith('…')).toBe(true);
  });

  it('keeps its connection alive across sends', async () => {
    const { server, sender, token } = await start();
    for (let i = 0; i < 3; i++) expect(await sender.send(job(token, { id: `m${i}` }))).toMatchObject({ outcome: 'ok' });
    expect(server.received).toHaveLength(3);
    expect(server.connections()).toBe(1);
  });

  it('fails every send with the reason when the VAPID keys are invalid', async () => {
    server = await startWebPushServer();
    sender = new WebPushSender({ ...server.creds, vapidPrivateKey: 'short' }, { ca: server.ca, allowedHosts: ['127.0.0.1'] });
    expect(await sender.send(job(server.subscribe()))).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('VAPID') });
    expect(server.requests).toHaveLength(0);
  });
});
