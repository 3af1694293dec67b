import { describe, expect, it } from 'vitest';
import { apnsClearBody, apnsClearHeaders } from '../senders/apns.js';
import { buildFcmClearBody } from '../senders/fcm.js';
import type { PushJob } from '../senders/types.js';

/** Section 4 read sync: silent clear pushes stay within 4096 bytes however many ids a read names (1-500). */
const job = (ids: string[], vendor: 'apns' | 'fcm'): PushJob => ({
  jobId: 'clear:1:d', user: 'u', device: 'd', vendor, token: 'ab'.repeat(32),
  message: { id: 'clear:1', to: 'u', acceptedAt: 1, ttlSeconds: 3600 }, clear: { ids }, badge: 7,
});

describe('clear pushes', () => {
  const many = Array.from({ length: 500 }, (_, i) => `${String(i).padStart(3, '0')}-${'x'.repeat(124)}`);

  it('APNs: the newest ids that fit 4096 bytes, the badge exact, no alert', () => {
    const body = JSON.parse(apnsClearBody(job(many, 'apns'))!);
    expect(Buffer.byteLength(apnsClearBody(job(many, 'apns'))!)).toBeLessThanOrEqual(4096);
    expect(body.aps).toEqual({ 'content-available': 1, badge: 7 });
    expect(body.ids.length).toBeGreaterThan(10);
    expect(body.ids.at(-1)).toBe(many.at(-1));
    expect(apnsClearHeaders(job(many, 'apns'), 'com.example', 1_000_000)).toMatchObject({ 'apns-push-type': 'background', 'apns-priority': '5', 'apns-expiration': String(1000 + 3600) });
  });

  it('FCM: data-only, string values, within 4096 bytes', () => {
    const raw = buildFcmClearBody(job(many, 'fcm'))!;
    expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(4096);
    const { message } = JSON.parse(raw);
    expect(message.notification).toBeUndefined();
    expect(message.data.type).toBe('clear');
    expect(message.data.badge).toBe('7');
    expect(JSON.parse(message.data.ids).at(-1)).toBe(many.at(-1));
  });
});
