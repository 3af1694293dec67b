import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  decodeBatchRequest, decodeClientFrame, decodeDeviceRegistration, decodeSendBytes, decodeSendRequest, MAX_DATA_KEYS, MAX_MESSAGE_BYTES,
  MAX_SEND_READ_BYTES, MAX_DATA_VALUE_CHARS, MAX_TTL_SECONDS, type Decoded, type SendEncoding,
} from '../protocol/index.js';

/**
 * The codes PROTOCOL.md section 3 names, whatever else is wrong with a request: `invalid_field` for a push token
 * that does not fit its OS (a PUT body and a `register` frame alike), 413 `payload_too_large` for a message whose
 * push payload cannot fit even with `text` cut to nothing, before our own field and body limits.
 */

const packr = new Packr({ useRecords: false });
const encode = (v: unknown, encoding: SendEncoding): Uint8Array => (encoding === 'json' ? new TextEncoder().encode(JSON.stringify(v)) : packr.pack(v));

function errorOf<T>(r: Decoded<T>): { code: string; message: string } {
  expect(r.ok).toBe(false);
  return r.ok ? { code: '', message: '' } : r.error.toBody();
}

const IOS = 'a1'.repeat(32);
const KEYS = { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' };
const SUBSCRIPTION = { endpoint: 'https://fcm.googleapis.com/fcm/send/abc', keys: KEYS };
const WEB = JSON.stringify(SUBSCRIPTION);

/** Tokens that do not fit their OS, of every kind: absent, another JSON type, empty, too long, bad characters. */
const MISFITS: [string, string, unknown][] = [
  ['ios', 'absent', undefined],
  ['ios', 'null', null],
  ['ios', 'a number', 42],
  ['ios', 'an array', [IOS]],
  ['ios', 'empty', ''],
  ['ios', '63 hex digits', 'a'.repeat(63)],
  ['ios', '201 hex digits', 'a'.repeat(201)],
  ['ios', 'far too long', 'a'.repeat(5000)],
  ['ios', 'not hex', 'g'.repeat(64)],
  ['android', 'absent', undefined],
  ['android', 'a number', 1],
  ['android', 'an object', { token: 'fcm-token' }],
  ['android', 'empty', ''],
  ['android', '4097 characters', 'x'.repeat(4097)],
  ['android', 'a slash', 'fcm/token'],
  ['android', 'a space', 'fcm token'],
  ['android', 'a non-ASCII letter', 'fcm-tökén'],
  ['harmony', 'a boolean', true],
  ['harmony', 'empty', ''],
  ['harmony', '4097 characters', 'h'.repeat(4097)],
  ['harmony', 'a newline', 'hms\ntoken'],
  ['web', 'absent', undefined],
  ['web', 'the subscription as a JSON object, not a string', SUBSCRIPTION],
  ['web', 'an array', [WEB]],
  ['web', 'empty', ''],
  ['web', 'over 4096 characters (valid JSON padded with spaces)', WEB + ' '.repeat(4097 - WEB.length)],
  ['web', 'not JSON', 'not json'],
  ['web', 'JSON without keys', JSON.stringify({ endpoint: SUBSCRIPTION.endpoint })],
];

describe('push tokens that do not fit their OS: 400 invalid_field naming token (section 3 PUT devices row, section 2 register)', () => {
  it.each(MISFITS)('%s token %s: refused in a PUT body and in a register frame alike', (os, _, token) => {
    const put = errorOf(decodeDeviceRegistration({ os, token }));
    const frame = errorOf(decodeClientFrame(JSON.stringify({ type: 'register', os, token })));
    for (const e of [put, frame]) {
      expect(e.code).toBe('invalid_field');
      expect(e.message).toMatch(/\btoken must be\b/);
      if (typeof token === 'string' && token.length >= 8) expect(e.message).not.toContain(token); // never echoed
    }
    expect(frame).toEqual(put);
  });

  it('takes the longest tokens each OS allows', () => {
    for (const [os, token] of [['ios', 'F'.repeat(200)], ['android', 'x'.repeat(4096)], ['harmony', 'h'.repeat(4096)], ['web', WEB + ' '.repeat(4096 - WEB.length)]]) {
      expect(decodeDeviceRegistration({ os, token })).toEqual({ ok: true, value: { os, token: os === 'ios' ? token.toLowerCase() : token } });
    }
  });

  it.each([['a number', 5], ['empty', ''], ['129 characters', 'a'.repeat(129)], ['a control character', 'be\u0000ta']])(
    'refuses an app that is %s with invalid_field naming app (section 3: "app must be a configured app")', (_, app) => {
      const e = errorOf(decodeDeviceRegistration({ os: 'ios', token: IOS, app }));
      expect(e.code).toBe('invalid_field');
      expect(e.message).toMatch(/\bapp must be\b/);
    },
  );

  it('keeps invalid_request for a body that is no object; an os that is none of the four is invalid_field, as the token that cannot fit it', () => {
    expect(errorOf(decodeDeviceRegistration([IOS])).code).toBe('invalid_request');
    for (const os of ['symbian', undefined, 7, 'IOS']) {
      expect(errorOf(decodeDeviceRegistration({ os, token: IOS }))).toEqual({ code: 'invalid_field', message: 'a field has a value that is not allowed: os must be one of "ios", "android", "harmony", "web"' });
    }
  });
});

/** `data` of n keys, each entry about 10 bytes in a payload. */
const keys = (n: number, value = 'v'.repeat(4)) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));

describe('413 payload_too_large wins over our own field limits (section 3)', () => {
  it.each([
    ['a title of 4096 characters (over MAX_TITLE_CHARS)', { title: 'x'.repeat(4096) }],
    ['data of 400 keys of ~10 bytes each (over MAX_DATA_KEYS)', { data: keys(400) }],
    ['a data value over MAX_DATA_VALUE_CHARS', { data: { k: 'x'.repeat(MAX_DATA_VALUE_CHARS + 1) } }],
    ['a data key of 5000 characters (over 256)', { data: { ['k'.repeat(5000)]: 'v' } }],
    ['a from of 5000 characters (over the 128 of an id)', { from: 'f'.repeat(5000) }],
    ['a collapseKey of 5000 characters with a title (Push Kit carries it as the tag)', { title: 'hi', collapseKey: 'c'.repeat(5000) }],
    ['a title of 5000 characters and a ttlSeconds out of range', { title: 'x'.repeat(5000), ttlSeconds: MAX_TTL_SECONDS + 1 }],
    ['a title of 5000 characters and a text of 60000', { title: 'x'.repeat(5000), text: 'x'.repeat(60_000) }],
  ])('%s', (_, extra) => {
    const e = errorOf(decodeSendRequest({ id: 'm', to: 'u', ...extra }, 0));
    expect(e.code).toBe('payload_too_large');
    expect(e.message).toMatch(/push payload of (at least )?\d+ bytes( \([^)]*\))?; the limit is 4096/);
  });

  it.each([
    ['a title of 1025 characters', { title: 'x'.repeat(1025) }, 'title'],
    ['data of 65 small keys', { data: keys(MAX_DATA_KEYS + 1) }, 'data'],
    ['a data key of 257 characters', { data: { ['k'.repeat(257)]: 'v' } }, 'data'],
    ['a collapseKey of 65 characters', { collapseKey: 'c'.repeat(65) }, 'collapseKey'],
    ['a from of 129 characters', { from: 'f'.repeat(129) }, 'from'],
    ['an empty from', { from: '' }, 'from'],
    ['a ttlSeconds over 28 days', { ttlSeconds: MAX_TTL_SECONDS + 1 }, 'ttlSeconds'],
    ['a fractional ttlSeconds', { ttlSeconds: 1.5 }, 'ttlSeconds'],
  ])('keeps 400 invalid_request for %s when the push payload could fit', (_, extra, field) => {
    const e = errorOf(decodeSendRequest({ id: 'm', to: 'u', ...extra }, 0));
    expect(e.code).toBe('invalid_request');
    expect(e.message).toContain(`${field} must be`);
  });

  it('takes a text of any length the body allows: section 5 shortens it to fit a push, it is never refused for length', () => {
    const text = 'é😀'.repeat(20_000); // 60,000 UTF-16 code units, ~120 KB of UTF-8: within the decoder's own bound
    const decoded = decodeSendRequest({ id: 'm', to: 'u', text }, 0);
    expect(decoded.ok && decoded.value.text).toBe(text);
  });

  it('answers the contract\'s own 400s first: an id over 128 characters, a mistyped field, a reserved data key', () => {
    const big = { title: 'x'.repeat(5000) };
    expect(errorOf(decodeSendRequest({ id: 'm'.repeat(129), to: 'u', ...big }, 0))).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('id must be') });
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', ...big, priority: 'urgent' }, 0))).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('priority') });
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', ...big, ttlSeconds: '60' }, 0))).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('ttlSeconds') });
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', ...big, data: { from: 'x' } }, 0))).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('data.from') });
  });

  it('a data object of 50,000 short keys is payload_too_large (counted until past the limit, never copied), in a body and in a batch', () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 50_000; i++) many[`k${i}`] = '';
    expect(errorOf(decodeSendRequest({ id: 'm', to: 'u', data: many }, 0))).toMatchObject({ code: 'payload_too_large', message: expect.stringMatching(/at least \d+ bytes/) });
    const bytes = encode({ id: 'm', to: 'u', data: many }, 'json');
    expect(bytes.length).toBeGreaterThan(MAX_MESSAGE_BYTES);
    expect(errorOf(decodeSendBytes(bytes, 'json', 0)).code).toBe('payload_too_large');
    const d = decodeBatchRequest({ messages: [{ id: 'a', to: 'u', data: many }, { id: 'b', to: 'u' }] }, 1);
    if (!d.ok) throw d.error;
    expect(d.value.map((i) => (i.ok ? `${i.msg.id}:ok` : `${i.id}:${i.error.code}`))).toEqual(['a:payload_too_large', 'b:ok']);
  });

  it('answers each message of a batch the same way', () => {
    const d = decodeBatchRequest({ messages: [
      { id: 'a', to: 'u', title: 'x'.repeat(4096) },
      { id: 'b', to: 'u', data: keys(400) },
      { id: 'c', to: 'u', title: 'x'.repeat(1025) },
      { id: 'd', to: 'u', title: 'fits' },
    ] }, 1);
    if (!d.ok) throw d.error;
    expect(d.value.map((i) => (i.ok ? `${i.msg.id}:ok` : `${i.id}:${i.error.code}`))).toEqual(['a:payload_too_large', 'b:payload_too_large', 'c:invalid_request', 'd:ok']);
  });
});

describe('a message of a batch over 64 KiB (MAX_MESSAGE_BYTES) as JSON', () => {
  /** A message whose JSON takes exactly `bytes` bytes (as sent: no `acceptedAt`), its text made of `unit` (one UTF-16 unit each). */
  const sized = (id: string, bytes: number, unit: string) => {
    const shell = Buffer.byteLength(JSON.stringify({ id, to: 'u', text: '' }));
    const per = Buffer.byteLength(JSON.stringify(unit)) - 2;
    const m = { id, to: 'u', text: unit.repeat(Math.floor((bytes - shell) / per)) + 'x'.repeat((bytes - shell) % per) };
    expect(Buffer.byteLength(JSON.stringify(m))).toBe(bytes);
    return m;
  };

  it('is body_too_large alone, as the same message sent by itself is; one at the limit and the rest go through', () => {
    const atLimit = sized('at', MAX_MESSAGE_BYTES, 'x');
    const over = sized('over', MAX_MESSAGE_BYTES + 1, 'x');
    // Escaped and multi-byte characters count as the bytes they take: 10,923 control characters are 65,538 bytes.
    const escaped = { id: 'esc', to: 'u', text: '\u0001'.repeat(10_923) };
    const euro = sized('euro', MAX_MESSAGE_BYTES - 3, '€');
    const d = decodeBatchRequest({ messages: [atLimit, over, escaped, euro, { id: 'small', to: 'u', text: 'hi' }] }, 1);
    if (!d.ok) throw d.error;
    expect(d.value.map((i) => (i.ok ? `${i.msg.id}:ok` : `${i.id}:${i.error.code}`))).toEqual(['at:ok', 'over:body_too_large', 'esc:body_too_large', 'euro:ok', 'small:ok']);
    expect(errorOf(decodeSendBytes(encode(over, 'json'), 'json', 0)).code).toBe('body_too_large');
    expect(decodeSendBytes(encode(atLimit, 'json'), 'json', 0).ok).toBe(true);
    const refused = d.value[1];
    expect(refused.ok ? undefined : refused.error.message).toMatch(/65537 bytes as JSON; the limit is 65536/);
  });

  it('measures the message as decoded: a field the contract does not know (a MessagePack int64, a BigInt) is dropped, not a crash of the batch', () => {
    const long = { id: 'big', to: 'u', text: 'x'.repeat(40_000), sentAt: 1733100000000000000n };
    const d = decodeBatchRequest({ messages: [long, { ...long, id: 'over', text: 'x'.repeat(70_000) }] }, 1);
    if (!d.ok) throw d.error;
    expect(d.value.map((i) => (i.ok ? `${i.msg.id}:ok` : `${i.id}:${i.error.code}`))).toEqual(['big:ok', 'over:body_too_large']);
    expect(d.value[0].ok && 'sentAt' in d.value[0].msg).toBe(false);
  });
});

describe('a send request over 64 KiB (MAX_MESSAGE_BYTES), HTTP body or NATS payload', () => {
  it.each(['json', 'msgpack'] as const)('%s: 413 payload_too_large when its message could never be pushed, else 413 body_too_large', (encoding) => {
    const over = (v: unknown) => {
      const bytes = encode(v, encoding);
      expect(bytes.length).toBeGreaterThan(MAX_MESSAGE_BYTES);
      return errorOf(decodeSendBytes(bytes, encoding, 0)).code;
    };
    expect(over({ id: 'm', to: 'u', title: 'x'.repeat(70_000) })).toBe('payload_too_large');
    expect(over({ id: 'm', to: 'u', text: 'x'.repeat(30_000), data: { a: 'y'.repeat(40_000) } })).toBe('payload_too_large');
    expect(over({ id: 'm', to: 'u', data: keys(7000) })).toBe('payload_too_large');
    // Mostly text, which is cut to fit when pushed: its payload could fit, so only the body is too large.
    expect(over({ id: 'm', to: 'u', title: 'hi', text: 'x'.repeat(70_000) })).toBe('body_too_large');
    // Within the limit, the same title is refused the same way.
    expect(errorOf(decodeSendBytes(encode({ id: 'm', to: 'u', title: 'x'.repeat(5000) }, encoding), encoding, 0)).code).toBe('payload_too_large');
  });

  it('json: whitespace, bytes that are not JSON and a mistyped message over the limit are body_too_large', () => {
    const pad = new TextEncoder().encode(`{"id":"m","to":"u",${' '.repeat(MAX_MESSAGE_BYTES)}"title":"hi"}`);
    expect(errorOf(decodeSendBytes(pad, 'json', 0)).code).toBe('body_too_large');
    expect(errorOf(decodeSendBytes(new Uint8Array(MAX_MESSAGE_BYTES + 1).fill(0x78), 'json', 0)).code).toBe('body_too_large');
    expect(errorOf(decodeSendBytes(encode({ id: 5, to: 'u', title: 'x'.repeat(70_000) }, 'json'), 'json', 0)).code).toBe('body_too_large');
  });

  it('msgpack: a payload that is not MessagePack is bad_json, also the one byte MessagePack never uses (0xc1); a value that is not a map says what it must be', () => {
    expect(errorOf(decodeSendBytes(Uint8Array.of(0xc1), 'msgpack', 0)).code).toBe('bad_json');
    expect(errorOf(decodeSendBytes(Uint8Array.from(new Packr({ useRecords: false }).pack(['m', 'u'])), 'msgpack', 0))).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('MessagePack map') });
  });

  it('does not decode more than MAX_SEND_READ_BYTES: body_too_large', () => {
    const huge = encode({ id: 'm', to: 'u', title: 'x'.repeat(MAX_SEND_READ_BYTES) }, 'json');
    expect(errorOf(decodeSendBytes(huge, 'json', 0))).toMatchObject({ code: 'body_too_large', message: expect.stringContaining(`the limit is ${MAX_MESSAGE_BYTES}`) });
  });
});
