import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeDeviceRegistration, decodeSendBytes, decodeSendRequest, type Decoded } from '../protocol/index.js';
import { isReservedDataKey } from './vendors/fcm-server.js';

/** Issue 9, edge rules of PROTOCOL.md v1.1 section 3: what the vendors refuse is refused before it is accepted. */

const packr = new Packr({ useRecords: false });
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function errorOf<T>(r: Decoded<T>): { code: string; message: string } {
  expect(r.ok).toBe(false);
  return r.ok ? { code: '', message: '' } : r.error.toBody();
}

describe('send requests: reserved data keys (section 3, FCM reserved words)', () => {
  it.each(['from', 'message_type', 'notification', 'google.c.a.e', 'gcm.n.e', 'messageId', 'sender'])('refuses data.%s with invalid_field naming it', (key) => {
    const e = errorOf(decodeSendRequest({ id: 'm', to: 'u', data: { [key]: 'x' } }, 0));
    expect(e.code).toBe('invalid_field');
    expect(e.message).toContain(`data.${key}`);
  });

  it.each(['GOOGLE.x', 'Gcm.x', 'gCm.notification.title', 'Google.c.a.e'])('refuses data.%s: the reserved prefixes in any case, as FCM does', (key) => {
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', data: { [key]: 'x' } }, 0)).code).toBe('invalid_field');
  });

  it('accepts no data key that the FCM stand-in refuses (a 202 whose push could only fail)', () => {
    const word = fc.constantFrom('from', 'message_type', 'notification', 'google', 'gcm', 'Google', 'GCM', 'x', 'sender');
    const key = fc.tuple(word, fc.constantFrom('', '.', '.n', 'X.'), fc.string({ maxLength: 4 })).map(([a, b, c]) => a + b + c);
    fc.assert(fc.property(key, (k) => {
      const r = decodeSendRequest({ id: 'm', to: 'u', data: { [k]: 'v' } }, 0);
      return !(r.ok && isReservedDataKey(k));
    }), { numRuns: 2000 });
  });

  it('accepts keys that only look alike', () => {
    const r = decodeSendRequest({ id: 'm', to: 'u', data: { fromUser: 'x', googleish: 'y', constructor: 'c', prototype: 'p' } }, 0);
    expect(r).toMatchObject({ ok: true, value: { data: { fromUser: 'x', googleish: 'y', constructor: 'c', prototype: 'p' } } });
  });
});

describe('send requests: payload_too_large says which vendor and what it counted', () => {
  it('names the vendor whose payload is over, its size and its limit; no room is kept for a Push Kit token', () => {
    const e = errorOf(decodeSendRequest({ id: 'm', to: 'u', data: { k: 'v'.repeat(4000) } }, 0));
    expect(e.code).toBe('payload_too_large');
    expect(e.message).toMatch(/even without text: title and data alone make (an APNs|an FCM|a Huawei Push Kit|a Web Push) push payload of \d+ bytes( \(counting room for the badge\))?; the limit is \d+$/);
    // 3,730 characters of data: 3,851 bytes by Push Kit's count (which leaves the device token out, "excluding
    // token"), under every vendor's limit; refused when room was kept for a 256-character token.
    expect(decodeSendRequest({ id: 'm', to: 'u', data: { k: 'v'.repeat(3730) } }, 0)).toMatchObject({ ok: true });
  });
});

describe('send requests: __proto__ is an error, not dropped', () => {
  it('refuses a JSON data key __proto__', () => {
    const body = JSON.parse('{"id":"m","to":"u","data":{"__proto__":"x","a":"b"}}');
    expect(errorOf(decodeSendRequest(body, 0))).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('__proto__') });
  });

  it('refuses a top-level __proto__ key', () => {
    const bytes = new TextEncoder().encode('{"id":"m","to":"u","__proto__":{"text":"x"}}');
    expect(errorOf(decodeSendBytes(bytes, 'json', 0)).code).toBe('invalid_field');
  });

  it('refuses a MessagePack map key __proto__ (msgpackr would rename it)', () => {
    const bytes = packr.pack(JSON.parse('{"id":"m","to":"u","data":{"__proto__":"x"}}'));
    expect(errorOf(decodeSendBytes(bytes, 'msgpack', 0))).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('__proto__') });
    // A value "__proto__" is just text.
    expect(decodeSendBytes(packr.pack({ id: 'm', to: 'u', text: '__proto__' }), 'msgpack', 0).ok).toBe(true);
  });
});

describe('send requests: text that is not UTF-8', () => {
  it('refuses a JSON body with invalid UTF-8 bytes', () => {
    const good = json({ id: 'm', to: 'u', text: 'AB' });
    const bad = Buffer.from(good);
    bad[bad.indexOf(0x41)] = 0xff; // "A" -> a byte that is never UTF-8
    expect(decodeSendBytes(good, 'json', 0).ok).toBe(true);
    expect(errorOf(decodeSendBytes(bad, 'json', 0))).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('UTF-8') });
  });

  it('refuses MessagePack strings with invalid UTF-8, in values and keys', () => {
    const bytes = Buffer.from(packr.pack({ id: 'm', to: 'u', text: 'AB', data: { kk: 'v' } }));
    const text = Buffer.from(bytes);
    text[text.indexOf(0x41)] = 0xc3; // a lead byte without its continuation
    expect(errorOf(decodeSendBytes(text, 'msgpack', 0)).code).toBe('invalid_field');
    const key = Buffer.from(bytes);
    key[key.indexOf(Buffer.from('kk'))] = 0xed; // the start of a UTF-16 surrogate encoded as UTF-8 (CESU)
    expect(errorOf(decodeSendBytes(key, 'msgpack', 0)).code).toBe('invalid_field');
  });

  it('refuses lone surrogates from JSON escapes (they cannot be sent as UTF-8)', () => {
    const bytes = new TextEncoder().encode('{"id":"m","to":"u","text":"a\\ud800b"}');
    expect(errorOf(decodeSendBytes(bytes, 'json', 0))).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('text') });
    const ok = new TextEncoder().encode('{"id":"m","to":"u","text":"\\ud83d\\ude00"}');
    expect(decodeSendBytes(ok, 'json', 0)).toMatchObject({ ok: true, value: { text: '😀' } });
  });

  it('still answers bad_json for what is not JSON or MessagePack', () => {
    expect(errorOf(decodeSendBytes(new TextEncoder().encode('{"id":'), 'json', 0)).code).toBe('bad_json');
    expect(errorOf(decodeSendBytes(Uint8Array.of(0x82, 0xa1, 0x61), 'msgpack', 0)).code).toBe('bad_json');
  });
});

describe('send requests: urgent (section 3, v1.1)', () => {
  it('carries urgent true on the message', () => {
    expect(decodeSendRequest({ id: 'm', to: 'u', urgent: true }, 7)).toEqual({ ok: true, value: { id: 'm', to: 'u', urgent: true, acceptedAt: 7 } });
    // Only true is kept (false is the default).
    expect(decodeSendBytes(packr.pack({ id: 'm', to: 'u', urgent: false }), 'msgpack', 7)).toEqual({ ok: true, value: { id: 'm', to: 'u', acceptedAt: 7 } });
  });

  it('refuses a non-boolean urgent', () => {
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', urgent: 'yes' }, 0))).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('urgent') });
  });
});

describe('send requests: 413 payload_too_large (section 3)', () => {
  it('refuses a title that alone exceeds 4096 bytes (control characters are 6 bytes each in JSON)', () => {
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', title: '\u0001'.repeat(1000) }, 0))).toMatchObject({ code: 'payload_too_large' });
  });

  it('refuses data that alone exceeds 4096 bytes', () => {
    const data = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'x'.repeat(520)]));
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', data }, 0)).code).toBe('payload_too_large');
  });

  it('accepts a long text: only the text is shortened at send time', () => {
    expect(decodeSendRequest({ id: 'm', to: 'u', title: 'hi', text: 'x'.repeat(30_000) }, 0).ok).toBe(true);
  });
});

describe('push token rules (section 3, PUT devices row)', () => {
  const sub = (endpoint: string, keys: unknown = { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' }) =>
    JSON.stringify({ endpoint, keys });

  it.each([
    ['ios', 'a1'.repeat(32)],
    ['ios', 'F'.repeat(200)],
    ['android', 'fcm-registration-token:APA91bExample_1234567890'],
    ['harmony', 'IQAAAACy0kYkAAAB.harmony-token'],
    ['android', 'x'.repeat(4096)],
    ['web', sub('https://fcm.googleapis.com/fcm/send/abc')],
  ])('accepts %s %s', (os, token) => {
    // An APNs token is kept in lower case (one token, either case, is one device).
    expect(decodeDeviceRegistration({ os, token })).toEqual({ ok: true, value: { os, token: os === 'ios' ? token.toLowerCase() : token } });
  });

  it.each([
    ['ios', 'zz'],
    ['ios', 'a'.repeat(63)],
    ['ios', 'a'.repeat(201)],
    ['ios', `${'a'.repeat(64)}\n`],
    ['android', 'tok\r\nX-Injected: 1'],
    ['android', 'tok\u0000'],
    ['harmony', 'tok en'],
    ['web', 'not json'],
    ['web', '"https://fcm.googleapis.com/x"'],
    ['web', sub('http://fcm.googleapis.com/fcm/send/abc')],
    ['web', sub('https://user:pw@fcm.googleapis.com/fcm/send/abc')],
    ['web', sub('not a url')],
    ['web', sub('https://fcm.googleapis.com/fcm/send/abc', { p256dh: 'BNcR' })],
    ['web', sub('https://fcm.googleapis.com/fcm/send/abc', { p256dh: 'a b', auth: 'x' })],
  ])('refuses %s %j with invalid_field naming the token', (os, token) => {
    const e = errorOf(decodeDeviceRegistration({ os, token }));
    expect(e.code).toBe('invalid_field');
    expect(e.message).toContain('token');
    expect(e.message).not.toContain(token); // the token itself is never echoed
  });
});
