import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerMatches } from '../gateway/auth.js';
import { decodeClientFrame, decodeSendRequest, isId, isMessageId, isWellFormed, MAX_ID_CHARS } from '../protocol/index.js';

/**
 * Issue 13 (HTTP entry): the shortcuts of the hot path answer exactly as the rules they stand for. Each is checked
 * against the plain definition it replaced, on the edges and on random strings of every kind of character.
 */

/** The definitions before the shortcuts: 1-128 code points, none in \p{C}; no lone surrogate. */
const referenceIsId = (v: unknown): boolean => typeof v === 'string' && [...v].length >= 1 && [...v].length <= MAX_ID_CHARS && /^[^\p{C}]+$/u.test(v);
const referenceWellFormed = (s: string): boolean => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

const anyString = fc.oneof(
  fc.string({ maxLength: 140 }),
  fc.string({ unit: 'binary', maxLength: 140 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 140 }),
  fc.string({ unit: fc.constantFrom('a', ' ', '~', '\u007f', '\u001f', '\u0080', '\u00ad', 'é', '😀', '\ud800', '\udc00'), maxLength: 140 }),
);

describe('isId: the printable-ASCII shortcut', () => {
  it('draws the line at 128 characters and at the controls around the printable range', () => {
    expect(isId('a'.repeat(MAX_ID_CHARS))).toBe(true);
    expect(isId('a'.repeat(MAX_ID_CHARS + 1))).toBe(false);
    expect(isId(' ~')).toBe(true);
    for (const c of ['\u001f', '\u007f', '\u0080', '\u00ad']) expect(isId(`a${c}b`)).toBe(false);
    expect(isId('😀'.repeat(MAX_ID_CHARS))).toBe(true); // 256 UTF-16 units, 128 characters
    expect(isId('😀'.repeat(MAX_ID_CHARS) + 'a')).toBe(false);
    expect(isId('é'.repeat(MAX_ID_CHARS))).toBe(true);
    expect(isId('')).toBe(false);
  });

  it('agrees with the plain definition on any string', () => {
    fc.assert(fc.property(anyString, (s) => isId(s) === referenceIsId(s)), { numRuns: 3000 });
  });
});

describe('message ids (section 3: "1-128 chars"): any characters, unlike user and device ids', () => {
  const referenceIsMessageId = (v: unknown): boolean => typeof v === 'string' && [...v].length >= 1 && [...v].length <= MAX_ID_CHARS && referenceWellFormed(v);
  const odd = ['tab\tid', 'line\nbreak', 'nul\u0000', '👩\u200d💻', 'soft\u00adhyphen', 'private\ue000', '\u{10ffff}'];

  it('takes controls, format characters and the rest in the id of a message, an ack and a read; 128 characters at most, well-formed', () => {
    for (const id of [...odd, '😀'.repeat(MAX_ID_CHARS)]) {
      expect(isMessageId(id)).toBe(true);
      const d = decodeSendRequest({ id, to: 'u' }, 0);
      expect(d.ok ? d.value.id : d.error.message).toBe(id);
      expect(decodeClientFrame(JSON.stringify({ type: 'ack', id }))).toEqual({ ok: true, value: { type: 'ack', id } });
      expect(decodeClientFrame(JSON.stringify({ type: 'read', ids: [id] }))).toEqual({ ok: true, value: { type: 'read', ids: [id] } });
    }
    for (const id of ['', '😀'.repeat(MAX_ID_CHARS) + 'a', 'a'.repeat(MAX_ID_CHARS + 1), 'lone\ud800', 42]) {
      expect(isMessageId(id)).toBe(false);
      const d = decodeSendRequest({ id, to: 'u' }, 0);
      expect(d.ok ? undefined : d.error.toBody()).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('id must be a string of 1-128 characters') });
    }
    // A user id stays 1-128 printable characters (section 2's claims), in `to` too.
    const to = decodeSendRequest({ id: 'm', to: 'tab\tuser' }, 0);
    expect(to.ok ? undefined : to.error.message).toMatch(/to must be a string of 1-128 printable characters/);
  });

  it('agrees with the plain definition on any string', () => {
    fc.assert(fc.property(anyString, (s) => isMessageId(s) === referenceIsMessageId(s)), { numRuns: 3000 });
  });
});

describe('isWellFormed: the native check', () => {
  it('agrees with the lone-surrogate pattern on any string', () => {
    expect(isWellFormed('a\ud800')).toBe(false);
    expect(isWellFormed('\udc00a')).toBe(false);
    expect(isWellFormed('😀')).toBe(true);
    fc.assert(fc.property(anyString, (s) => isWellFormed(s) === referenceWellFormed(s)), { numRuns: 3000 });
  });
});

describe('decodeSendRequest: the message it builds', () => {
  it('holds exactly the fields sent, in the contract order, acceptedAt last, no undefined values', () => {
    const full = decodeSendRequest({
      urgent: true, ttlSeconds: 60, priority: 'high', collapseKey: 'c', data: { k: 'v' }, text: 't', title: 'T', from: 'f', to: 'u', id: 'm',
    }, 5);
    if (!full.ok) throw full.error;
    expect(Object.keys(full.value)).toEqual(['id', 'to', 'from', 'title', 'text', 'data', 'collapseKey', 'priority', 'ttlSeconds', 'urgent', 'acceptedAt']);
    const lean = decodeSendRequest({ to: 'u', id: 'm', text: 't', urgent: false, priority: undefined }, 5);
    if (!lean.ok) throw lean.error;
    expect(Object.entries(lean.value)).toEqual([['id', 'm'], ['to', 'u'], ['text', 't'], ['acceptedAt', 5]]);
  });

  it('reports the first bad field in contract order (id, to, from, title, …)', () => {
    const bad = { id: '', to: '', from: 7, title: 7 };
    const first = (body: object) => {
      const d = decodeSendRequest(body, 0);
      return d.ok ? '' : d.error.message;
    };
    expect(first(bad)).toMatch(/^[^:]+: id must/);
    expect(first({ ...bad, id: 'm' })).toMatch(/: to must/);
    expect(first({ ...bad, id: 'm', to: 'u' })).toMatch(/: from must/);
    expect(first({ ...bad, id: 'm', to: 'u', from: 'f' })).toMatch(/: title must/);
  });

  it('refuses a lone surrogate in each text field and in data, naming the field', () => {
    for (const field of ['title', 'text', 'collapseKey']) {
      const d = decodeSendRequest({ id: 'm', to: 'u', [field]: 'x\ud800' }, 0);
      expect(d.ok ? undefined : d.error.toBody()).toMatchObject({ code: 'invalid_field', message: expect.stringContaining(field) });
    }
    for (const data of [{ k: 'x\udc00' }, { 'k\ud800': 'v' }]) {
      const d = decodeSendRequest({ id: 'm', to: 'u', data }, 0);
      expect(d.ok ? undefined : d.error.toBody()).toMatchObject({ code: 'invalid_field', message: expect.stringContaining('data') });
    }
  });
});

describe('read ids: checked in place', () => {
  it('names the first bad entry by its index, and drops duplicates of good ones', () => {
    const bad = decodeClientFrame(JSON.stringify({ type: 'read', ids: ['a', 'b', '', 7] }));
    expect(bad.ok ? undefined : bad.error.toBody()).toEqual({ code: 'invalid_request', message: 'request does not match the contract: ids[2] must be a string of 1-128 characters' });
    expect(decodeClientFrame(JSON.stringify({ type: 'read', ids: ['a', 'b', 'a'] }))).toEqual({ ok: true, value: { type: 'read', ids: ['a', 'b'] } });
  });
});

describe('bearer check: the key compared in full, in as many steps whatever the token', () => {
  it('lets in exactly the key, whatever it is made of', () => {
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 60 }).filter((k) => /^\S+$/.test(k)), anyString, (key, other) => {
      expect(bearerMatches(`Bearer ${key}`, key)).toBe(true);
      const token = /^Bearer +(\S+) *$/.exec(`Bearer ${other}`)?.[1]; // the header's token, as section 3 reads it
      expect(bearerMatches(`Bearer ${other}`, key)).toBe(token === key);
    }), { numRuns: 500 });
    expect(bearerMatches('Bearer clé-😀', 'clé-😀')).toBe(true);
    expect(bearerMatches('Bearer clé-😀', 'cle-😀')).toBe(false);
    // Prefixes, extensions and a last-character difference: the length check and the full loop both matter.
    const key = 'k3y-0123456789';
    for (const token of [key.slice(0, -1), `${key}x`, `${key}${key}`, `${key.slice(0, -1)}Y`, 'k', key.toUpperCase()]) {
      expect(bearerMatches(`Bearer ${token}`, key)).toBe(false);
    }
    expect(bearerMatches(`bearer   ${key}  `, key)).toBe(true);
    expect(bearerMatches(undefined, key)).toBe(false);
    expect(bearerMatches(`Basic ${key}`, key)).toBe(false);
  });
});

describe('ack frames: the plain-ack shortcut', () => {
  /** The same frame with a space after the comma: valid JSON alike, but never the shortcut's exact shape. */
  const general = (text: string) => decodeClientFrame(text.replace('"ack","id"', '"ack", "id"'));
  const identity = { user: 'u', device: 'd' };

  it('answers as the general path for acks as clients write them, any id', () => {
    fc.assert(fc.property(anyString, (id) => {
      const text = JSON.stringify({ type: 'ack', id });
      expect(decodeClientFrame(text, identity)).toEqual(general(text));
    }), { numRuns: 3000 });
  });

  it('answers as the general path when the id is pasted in raw (quotes, backslashes, controls: bad JSON or a bad id)', () => {
    fc.assert(fc.property(anyString, (raw) => {
      const text = `{"type":"ack","id":"${raw}"}`;
      expect(decodeClientFrame(text, identity)).toEqual(general(text));
    }), { numRuns: 3000 });
  });

  it('takes the id as it is on the edges of the shape and of the length', () => {
    expect(decodeClientFrame('{"type":"ack","id":"m-1"}')).toEqual({ ok: true, value: { type: 'ack', id: 'm-1' } });
    const longest = 'a'.repeat(MAX_ID_CHARS);
    expect(decodeClientFrame(`{"type":"ack","id":"${longest}"}`)).toEqual({ ok: true, value: { type: 'ack', id: longest } });
    for (const text of ['{"type":"ack","id":""}', `{"type":"ack","id":"${longest}a"}`, '{"type":"ack","id":"a"}x', '{"type":"ack","id":"a\\"b"}', '{"type":"ack","id":"a"b"}']) {
      expect(decodeClientFrame(text)).toEqual(general(text));
      expect(decodeClientFrame(text).ok).toBe(text === '{"type":"ack","id":"a\\"b"}'); // an escaped quote is a valid id
    }
  });
});
