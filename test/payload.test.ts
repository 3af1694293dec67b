import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { apnsBody } from '../senders/apns.js';
import { buildFcmBody } from '../senders/fcm.js';
import { buildHmsBody } from '../senders/hms.js';
import { fitText, hmsCountedBytes, payloadFits, utf8Length, payloadOverflow, WEBPUSH_MAX_PLAINTEXT_BYTES } from '../senders/payload.js';
import { buildWebPushPayload } from '../senders/webpush.js';
import { MAX_PUSH_PAYLOAD_BYTES, minPushPayloadBytes, pushPayloadBytesBound, pushPayloadBytesFloor } from '../protocol/push-payload.js';
import type { PushJob } from '../senders/types.js';

/** PROTOCOL.md sections 3 and 5: payloads never exceed 4096 bytes; text is cut at a grapheme boundary. */

const msg = (over: Partial<ChatMessage> = {}): ChatMessage => ({ id: 'm1', to: 'u1', from: 'alice', title: 'Alice', text: 'hi', acceptedAt: 0, ...over });
const job = (vendor: PushJob['vendor'], m: ChatMessage, token = 'tok'): PushJob => ({ jobId: 'm1:d', user: 'u1', device: 'd', vendor, token, message: m });

// A family (man, woman, girl, boy joined by zero-width joiners: 7 code points, 11 UTF-16 units, one grapheme),
// a flag (two regional indicators) and an e with a combining acute accent.
const FAMILY = '👨‍👩‍👧‍👦';
const FLAG = '🇩🇪';
const E_ACUTE = 'e\u0301';
const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
const clusters = (s: string) => Array.from(segmenter.segment(s), (x) => x.segment);

describe('utf8Length', () => {
  it('counts as Buffer.byteLength does, lone surrogates included', () => {
    for (const s of ['', 'abc', 'é', '€', '😀', FAMILY, FLAG, E_ACUTE, '\ud83d', 'x\ude00y', '😀'.slice(0, 1) + 'a']) expect(utf8Length(s), s).toBe(Buffer.byteLength(s));
  });
});

describe('fitText: cut at grapheme boundaries', () => {
  it('keeps a text that fits as it is', () => {
    expect(fitText('hello', (t) => Buffer.byteLength(t), 10)).toBe('hello');
  });

  it.each([
    ['a family emoji of seven code points', FAMILY],
    ['a flag of two regional indicators', FLAG],
    ['a letter with a combining accent', E_ACUTE],
  ])('never splits %s', (_name, unit) => {
    const text = unit.repeat(400);
    // Every limit from "one unit and the ellipsis" up: the cut text is whole units plus the ellipsis.
    for (let limit = Buffer.byteLength(unit + '…'); limit < Buffer.byteLength(unit) * 20; limit += 3) {
      const cut = fitText(text, (t) => Buffer.byteLength(t), limit)!;
      expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(limit);
      expect(cut.endsWith('…')).toBe(true);
      const kept = cut.slice(0, -1);
      expect(clusters(kept).every((c) => c === unit)).toBe(true);
      // The longest such prefix: one more unit would not fit.
      expect(Buffer.byteLength(kept + unit + '…')).toBeGreaterThan(limit);
    }
  });

  it('falls back to an empty text, and to undefined when not even that fits', () => {
    expect(fitText(FAMILY, (t) => 100 + Buffer.byteLength(t), 101)).toBe('');
    expect(fitText(FAMILY, (t) => 200 + Buffer.byteLength(t), 101)).toBeUndefined();
  });

  it('cuts every vendor body at a grapheme boundary (the old code-point cut split the family emoji)', () => {
    const m = msg({ text: FAMILY.repeat(1000) });
    const texts = [
      JSON.parse(apnsBody(m)!).aps.alert.body,
      JSON.parse(buildFcmBody(job('fcm', m))!).message.notification.body,
      JSON.parse(buildHmsBody(job('hms', m))!).message.android.notification.body,
      JSON.parse(buildWebPushPayload(job('webpush', m))!).body,
    ] as string[];
    for (const t of texts) {
      expect(t.endsWith('…')).toBe(true);
      expect(clusters(t.slice(0, -1)).every((c) => c === FAMILY)).toBe(true);
    }
  });

  it('keeps the longest whole-grapheme prefix that fits, also where a cut would split a surrogate pair', () => {
    // Brute force over every grapheme boundary against fitText, on texts of emoji, flags, accents and JSON escapes.
    // JSON escapes a lone surrogate as \\udxxx (6 bytes, more than the pair's 4): measured split, the size did not grow
    // with the cut and the search stopped short (105 of 2,000 such texts cut shorter than needed).
    const pool = ['a', 'é', '😀', FAMILY, FLAG, E_ACUTE, '"', '\\', '\u0001', '漢'];
    let seed = 7;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const size = (t: string): number => Buffer.byteLength(JSON.stringify({ body: t }));
    let shortened = 0;
    for (let k = 0; k < 1000; k++) {
      let text = '';
      for (let i = 0, n = 20 + Math.floor(random() * 150); i < n; i++) text += pool[Math.floor(random() * pool.length)];
      const limit = 20 + Math.floor(random() * size(text));
      const ends = clusters(text).reduce<number[]>((acc, c) => [...acc, acc[acc.length - 1] + c.length], [0]);
      let best: string | undefined = size(text) <= limit ? text : size('') <= limit ? '' : undefined;
      if (best !== text) for (const end of ends) if (end < text.length && size(text.slice(0, end) + '…') <= limit) best = text.slice(0, end) + '…';
      const got = fitText(text, size, limit);
      if (got !== text) shortened++;
      expect(got, text).toBe(best);
    }
    expect(shortened).toBeGreaterThan(900);
  });
});

describe('payloadOverflow / payloadFits: can the message fit at all (413 payload_too_large at the edge)', () => {
  it('fits when only the text is long: the text is shortened', () => {
    expect(payloadOverflow(msg({ text: 'x'.repeat(100_000) }))).toBeUndefined();
    expect(payloadFits(msg({ text: 'x'.repeat(100_000) }))).toBe(true);
  });

  it('does not fit when the title alone is too large for APNs', () => {
    expect(payloadOverflow(msg({ title: 't'.repeat(4100) }))).toEqual({ vendor: 'apns', bytes: expect.any(Number), limit: 4096 });
    expect(payloadFits(msg({ title: 't'.repeat(4100) }))).toBe(false);
  });

  it('does not fit when data alone is too large', () => {
    const over = payloadOverflow(msg({ data: { blob: 'd'.repeat(4090) } }));
    expect(over).toMatchObject({ limit: 4096 });
    expect(over!.bytes).toBeGreaterThan(4096);
  });

  it('counts no Push Kit device token: Push Kit limits the body "excluding token" (server API, Sending Messages)', () => {
    // Push Kit is the largest of the four payloads for the same message, so its limit binds first: a message whose
    // Push Kit body is exactly 4096 bytes without its token fits, one byte more does not.
    const sized = (n: number) => msg({ text: '', data: { k: 'z'.repeat(n) } });
    const base = hmsCountedBytes(sized(0), '', true);
    const exact = sized(4096 - base);
    expect(hmsCountedBytes(exact, '', true)).toBe(4096);
    expect(payloadOverflow(exact)).toBeUndefined();
    expect(payloadOverflow(sized(4097 - base))).toMatchObject({ vendor: 'hms', bytes: 4097, limit: 4096 });
    // What Push Kit counts: the body with an empty token list.
    const body = JSON.parse(buildHmsBody(job('hms', exact, 't'.repeat(300)))!);
    expect(Buffer.byteLength(JSON.stringify({ ...body, message: { ...body.message, token: [] } }))).toBeLessThanOrEqual(4096);
  });

  it('agrees with every sender: a message that fits is built by all four, one that does not is refused by at least one', () => {
    // Around the limits: data from 3300 to 4100 bytes, with an oversize text that is always shortened.
    let fits = 0;
    let refused = 0;
    for (let size = 3300; size <= 4100; size += 5) {
      const m = msg({ text: 'y'.repeat(5000), data: { k: 'z'.repeat(size) } });
      // Quiet hours make the larger bodies (silent variants): the edge's answer holds for them too.
      const silent = (j: PushJob): PushJob => ({ ...j, silent: true });
      const built = [apnsBody(m, true), buildFcmBody(silent(job('fcm', m))), buildHmsBody(silent(job('hms', m, 't'.repeat(300)))), buildWebPushPayload(silent(job('webpush', m)))];
      if (payloadFits(m)) {
        fits++;
        expect(built.every((b) => b !== undefined)).toBe(true);
      } else {
        refused++;
        expect(built.some((b) => b === undefined)).toBe(true);
        expect(payloadOverflow(m)!.bytes).toBeGreaterThan(payloadOverflow(m)!.limit);
      }
    }
    expect(fits).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });

  it('holds Web Push to its own plaintext limit, lower than 4096 by the encryption overhead', () => {
    expect(WEBPUSH_MAX_PLAINTEXT_BYTES).toBe(3993);
    const m = msg({ title: undefined, from: undefined, data: { k: 'z'.repeat(3990) } });
    expect(buildWebPushPayload(job('webpush', m))).toBeUndefined();
    expect(payloadFits(m)).toBe(false);
  });
});

describe('pushPayloadBytesBound and pushPayloadBytesFloor: the edge skips building payloads for messages far from the limit', () => {
  // Units that cost the most once escaped (control characters, quotes, backslashes, twice in Push Kit's data
  // string), non-ASCII of 2, 3 and 4 UTF-8 bytes, and U+2028 (left raw by JSON.stringify).
  const POOL = ['\u0001', '"', '\\', 'a', 'é', '中', '😀', '\u2028', '\u001f', '/'];
  let seed = 13;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const str = (max: number) => Array.from({ length: rand(max + 1) }, () => POOL[rand(POOL.length)]).join('');
  const maybe = <T>(v: T) => (rand(3) === 0 ? undefined : v);

  it('are never below (bound) or above (floor) the exact figure, on 2,000 random messages of escape-heavy and non-ASCII fields', () => {
    let near = 0;
    for (let i = 0; i < 2000; i++) {
      const data: Record<string, string> = {};
      for (let k = rand(6); k > 0; k--) data[`k${k}${str(8)}`] = str(200);
      const m = msg({ id: `m${str(20)}`, from: maybe(str(30)), title: maybe(str(300)), collapseKey: maybe(str(20)), data: maybe(data), priority: maybe('normal'), ttlSeconds: maybe(rand(2_419_200)) });
      const exact = minPushPayloadBytes(m);
      expect(pushPayloadBytesBound(m)).toBeGreaterThanOrEqual(exact);
      expect(pushPayloadBytesFloor(m)).toBeLessThanOrEqual(exact);
      if (exact > MAX_PUSH_PAYLOAD_BYTES / 2) near++;
    }
    expect(near).toBeGreaterThan(0);
  });

  it('clears an ordinary chat message without the exact figure (it is far under the limit)', () => {
    const m = msg({ id: 'msg-000123', from: 'alice', title: 'Alice in #general', text: 'see you at 5', data: { conversation: 'c-42', kind: 'text' } });
    expect(pushPayloadBytesBound(m)).toBeLessThanOrEqual(MAX_PUSH_PAYLOAD_BYTES);
  });
});
