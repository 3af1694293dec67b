import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import {
  ERRORS, MOBILE_OS, SwitchboardError, decodeClientFrame, decodeSendBytes, decodeSendRequest, type ChatMessage, type Decoded,
} from '../protocol/index.js';

/**
 * Issue 9: the message decoder and the client frame decoder take any input (bytes, strings, JSON values) and give a
 * result or a clear SwitchboardError, never a throw of anything else; whatever they accept round-trips.
 */

const packr = new Packr({ useRecords: false });
const RUNS = { numRuns: 400 };

function isClear<T>(r: Decoded<T>): boolean {
  return r.ok || (r.error instanceof SwitchboardError && r.error.code in ERRORS && r.error.message.length > 0);
}

/** Strings of every kind: ASCII, any code point, lone surrogates, and the keys the rules care about. */
const anyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('__proto__', 'constructor', 'from', 'sender', 'messageId', 'google.x', 'gcm.y', 'message_type', 'notification', '', 'a\ud800b', '\udc00', '😀', 'e\u0301'),
);
/** Mostly valid ids, sometimes anything. */
const idLike = fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^[a-z0-9@.:-]{1,12}$/) }, { weight: 1, arbitrary: anyString });

/** Message-shaped objects, so many of them pass the checks and reach the round trip. */
const messageLike = fc.record(
  {
    id: idLike,
    to: idLike,
    from: idLike,
    title: anyString,
    text: fc.oneof(anyString, fc.string({ maxLength: 5000 })),
    data: fc.dictionary(anyString, fc.oneof({ weight: 5, arbitrary: anyString }, { weight: 1, arbitrary: fc.integer() }), { maxKeys: 4 }),
    collapseKey: anyString,
    priority: fc.constantFrom('high', 'normal', 'urgent', undefined),
    ttlSeconds: fc.oneof(fc.integer({ min: -5, max: 3_000_000 }), fc.double(), fc.constant(undefined)),
    urgent: fc.oneof(fc.boolean(), fc.constant('true'), fc.constant(undefined)),
  },
  { requiredKeys: [] },
);

const anyBody = fc.oneof(messageLike, fc.jsonValue(), fc.anything());

/** The send request a chat server would send for an accepted message (acceptedAt is ours). */
function wireForm(m: ChatMessage): Record<string, unknown> {
  const { acceptedAt: _a, ...rest } = m;
  return rest;
}

describe('fuzz: message decoder (section 3)', () => {
  it('any bytes, as JSON or MessagePack: a result or a clear error', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('json', 'msgpack'), (bytes, enc) => {
      expect(isClear(decodeSendBytes(bytes, enc as 'json' | 'msgpack', 1))).toBe(true);
    }), RUNS);
  });

  it('any value, parsed or encoded: a result or a clear error; what is accepted round-trips in both encodings', () => {
    fc.assert(fc.property(anyBody, (body) => {
      const direct = decodeSendRequest(body, 7);
      expect(isClear(direct)).toBe(true);
      let json: Uint8Array | undefined;
      try {
        json = new TextEncoder().encode(JSON.stringify(body));
      } catch {
        // BigInt and the like: not JSON at all
      }
      if (json) expect(isClear(decodeSendBytes(json, 'json', 7))).toBe(true);
      let mp: Uint8Array | undefined;
      try {
        mp = packr.pack(body);
      } catch {
        // not encodable as MessagePack
      }
      if (mp) expect(isClear(decodeSendBytes(mp, 'msgpack', 7))).toBe(true);
      if (!direct.ok) return;
      const wire = wireForm(direct.value);
      expect(decodeSendBytes(new TextEncoder().encode(JSON.stringify(wire)), 'json', 7)).toEqual(direct);
      expect(decodeSendBytes(packr.pack(wire), 'msgpack', 7)).toEqual(direct);
      expect(decodeSendRequest(JSON.parse(JSON.stringify(wire)), 7)).toEqual(direct);
    }), RUNS);
  });

  it('accepts some of the generated messages (the round trip above is not vacuous)', () => {
    const samples = fc.sample(messageLike, { numRuns: 2000, seed: 42 });
    expect(samples.filter((b) => decodeSendRequest(b, 7).ok).length).toBeGreaterThan(200);
  });
});

const frameLike = fc.oneof(
  fc.record({ type: fc.constantFrom('hello'), token: anyString }, { requiredKeys: [] }),
  fc.record({ type: fc.constant('presence'), state: fc.constantFrom('active', 'inactive', 'foreground', 'background', 'away'), reason: fc.constantFrom('idle', 'screen_locked', 'client_locked', 'bored') }, { requiredKeys: ['type'] }),
  fc.record({
    type: fc.constant('register'),
    os: fc.constantFrom(...MOBILE_OS, 'symbian'),
    token: fc.oneof(anyString, fc.stringMatching(/^[0-9a-f]{60,210}$/), fc.stringMatching(/^[A-Za-z0-9_:.-]{1,80}$/)),
    app: anyString,
  }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('ack'), id: anyString }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constantFrom('ping', 'unregister', 'bogus'), user: fc.constantFrom('alice', 'mallory'), device: fc.constantFrom('pc1', 'phone') }, { requiredKeys: ['type'] }),
);

describe('fuzz: client frame decoder (section 2)', () => {
  const me = { user: 'alice', device: 'pc1' };

  it('any text: a result or a clear error', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.json()), (text) => {
      expect(isClear(decodeClientFrame(text))).toBe(true);
      expect(isClear(decodeClientFrame(text, me))).toBe(true);
    }), RUNS);
  });

  it('any frame-shaped value: a result or a clear error; what is accepted round-trips', () => {
    fc.assert(fc.property(fc.oneof(frameLike, fc.jsonValue()), (value) => {
      const text = JSON.stringify(value) ?? 'null';
      for (const identity of [undefined, me]) {
        const r = decodeClientFrame(text, identity);
        expect(isClear(r)).toBe(true);
        if (r.ok) expect(decodeClientFrame(JSON.stringify(r.value), identity)).toEqual(r);
      }
    }), RUNS);
  });
});
