import { afterEach, describe, expect, it } from 'vitest';
import { HMS_CLEAR_COLLAPSE_KEY, HmsSender } from '../senders/hms.js';
import type { PushJob } from '../senders/types.js';
import { APPLE_NO_CLEAR_REASON, WEBPUSH_CLEAR_TOPIC, WEBPUSH_MAX_PLAINTEXT_BYTES, WebPushSender } from '../senders/webpush.js';
import { startHmsServer, type HmsServer } from './vendors/hms-server.js';
import { startWebPushServer, type WebPushServer } from './vendors/webpush-server.js';

/**
 * Section 4 read sync, the silent clear push of Huawei Push Kit and Web Push, sent to the vendor stand-ins and
 * checked field by field against the vendors' documentation (the APNs and FCM ones: test/read-sync.int.test.ts).
 */

const clearJob = (vendor: 'hms' | 'webpush', token: string, ids: string[], badge: number): PushJob => ({
  jobId: `clear:1:d1`, user: 'u1', device: 'd1', vendor, token,
  message: { id: 'clear:1', to: 'u1', acceptedAt: 1, ttlSeconds: 3600 },
  clear: { ids }, badge,
});

describe('Huawei Push Kit clear push', () => {
  let server: HmsServer | undefined;
  let sender: HmsSender | undefined;
  afterEach(async () => {
    await sender?.close();
    await server?.close();
    sender = server = undefined;
  });

  it('is a data message with no notification, the ids and badge in data, collapse group 100 and urgency NORMAL', async () => {
    server = await startHmsServer();
    sender = new HmsSender(server.creds);
    expect(await sender.send(clearJob('hms', 'hms-token-1', ['m1', 'm2'], 3))).toMatchObject({ outcome: 'ok' });
    expect(await sender.send(clearJob('hms', 'hms-token-1', ['m3'], 2))).toMatchObject({ outcome: 'ok' });
    const [first, second] = server.sends().map((r) => r.parsed as { validate_only: boolean; message: { data: string; android: Record<string, unknown>; token: string[] } });
    // Push Kit server API, "Sending Messages": a data message has message.data (a string) and no notification, so
    // the device shows nothing and hands it to the app; AndroidConfig.collapse_key 1-100 is an offline cache group
    // that keeps only the newest message of the group; ttl like "3600s".
    expect(first).toEqual({
      validate_only: false,
      message: { data: first.message.data, android: { urgency: 'NORMAL', collapse_key: 100, ttl: '3600s' }, token: ['hms-token-1'] },
    });
    expect(HMS_CLEAR_COLLAPSE_KEY).toBe(100);
    expect(first.message).not.toHaveProperty('notification');
    expect(first.message.android).not.toHaveProperty('notification');
    expect(JSON.parse(first.message.data)).toEqual({ type: 'clear', ids: ['m1', 'm2'], badge: 3 });
    // Several clears collapse: each carries the same group, so Push Kit keeps only the newest while the phone is offline.
    expect(second.message.android.collapse_key).toBe(first.message.android.collapse_key);
    expect(JSON.parse(second.message.data)).toEqual({ type: 'clear', ids: ['m3'], badge: 2 });
  });

  it('keeps the newest ids that fit 4096 bytes and the exact badge', async () => {
    server = await startHmsServer();
    sender = new HmsSender(server.creds);
    const ids = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, '0')}-${'x'.repeat(60)}`);
    expect(await sender.send(clearJob('hms', 'hms-token-1', ids, 7))).toMatchObject({ outcome: 'ok' });
    const [send] = server.sends();
    expect(Buffer.byteLength(send.body)).toBeLessThanOrEqual(4096);
    const data = JSON.parse((send.parsed as { message: { data: string } }).message.data) as { ids: string[]; badge: number };
    expect(data.badge).toBe(7);
    expect(data.ids.length).toBeGreaterThan(0);
    expect(data.ids.length).toBeLessThan(ids.length);
    expect(data.ids).toEqual(ids.slice(ids.length - data.ids.length));
  });
});

describe('Web Push clear push', () => {
  let server: WebPushServer | undefined;
  let sender: WebPushSender | undefined;
  afterEach(async () => {
    await sender?.close();
    await server?.close();
    sender = server = undefined;
  });

  async function start(): Promise<{ server: WebPushServer; sender: WebPushSender }> {
    server = await startWebPushServer();
    sender = new WebPushSender(server.creds, { ca: server.ca, allowedHosts: ['127.0.0.1', 'web.push.apple.com'] });
    return { server, sender };
  }

  it('encrypts {"type":"clear","ids","badge"} and sends Topic switchboard-clear, Urgency low and the clear TTL', async () => {
    const { server, sender } = await start();
    const token = server.subscribe();
    expect(await sender.send(clearJob('webpush', token, ['m1', 'm2'], 3))).toMatchObject({ outcome: 'ok' });
    expect(await sender.send(clearJob('webpush', token, ['m3'], 0))).toMatchObject({ outcome: 'ok' });
    const [first, second] = server.requests;
    // RFC 8291: aes128gcm, decrypted by the stand-in with the subscription's private key; RFC 8030 section 5.2 TTL,
    // 5.3 Urgency ("low": on either power and Wi-Fi), 5.4 Topic (a queued message with the same topic is replaced).
    expect(first.headers['content-encoding']).toBe('aes128gcm');
    expect(first.headers).toMatchObject({ ttl: '3600', urgency: 'low', topic: 'switchboard-clear' });
    expect(WEBPUSH_CLEAR_TOPIC).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(first.parsed).toEqual({ type: 'clear', ids: ['m1', 'm2'], badge: 3 });
    expect(second.headers.topic).toBe(first.headers.topic);
    expect(second.parsed).toEqual({ type: 'clear', ids: ['m3'], badge: 0 });
    expect(server.received.map((r) => [r.urgency, r.topic, r.ttl])).toEqual([['low', 'switchboard-clear', 3600], ['low', 'switchboard-clear', 3600]]);
  });

  it('keeps the newest ids that fit the plaintext limit and the exact badge', async () => {
    const { server, sender } = await start();
    const ids = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, '0')}-${'y'.repeat(60)}`);
    expect(await sender.send(clearJob('webpush', server.subscribe(), ids, 9))).toMatchObject({ outcome: 'ok' });
    const [push] = server.received;
    expect(Buffer.byteLength(push.plaintext)).toBeLessThanOrEqual(WEBPUSH_MAX_PLAINTEXT_BYTES);
    const body = JSON.parse(push.plaintext) as { ids: string[]; badge: number };
    expect(body.badge).toBe(9);
    expect(body.ids.length).toBeGreaterThan(0);
    expect(body.ids).toEqual(ids.slice(ids.length - body.ids.length));
  });

  it('sends no clear to Safari (Apple revokes sites whose pushes show nothing)', async () => {
    const { server, sender } = await start();
    const apple = JSON.parse(server.subscribe()) as { endpoint: string; keys: object };
    const token = JSON.stringify({ ...apple, endpoint: 'https://web.push.apple.com/QGx1c2VyLXN1YnNjcmlwdGlvbg' });
    expect(await sender.send(clearJob('webpush', token, ['m1'], 0))).toEqual({ outcome: 'failed', reason: APPLE_NO_CLEAR_REASON });
    expect(server.requests).toHaveLength(0);
  });
});
