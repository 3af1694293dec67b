import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { checkMessagePackText } from '../protocol/msgpack-check.js';
import { SwitchboardError } from '../protocol/errors.js';

/**
 * Issue 13: checkMessagePackText no longer decodes strings (ASCII as it is, `isUtf8` for the rest, keys compared as
 * bytes). The walk it replaced is kept below as the reference, and both must give the same answer on any bytes:
 * MessagePack of any value, with bytes flipped to break UTF-8 and structure alike, and plain random bytes.
 */

const packr = new Packr({ useRecords: false });

/** The implementation before issue 13 (a fatal TextDecoder per str), verbatim but for names. */
function referenceCheck(bytes: Uint8Array): void {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: { left: number; map: boolean; index: number }[] = [];
  let pos = 0;
  const need = (n: number) => pos + n <= bytes.length;
  while (pos < bytes.length) {
    const top = stack[stack.length - 1];
    const isKey = top !== undefined && top.map && top.index % 2 === 0;
    if (top) {
      top.index++;
      if (--top.left === 0) stack.pop();
    }
    const b = bytes[pos++];
    let strLen = -1;
    let skip = 0;
    let open: { left: number; map: boolean } | undefined;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) skip = 0;
    else if (b >= 0xa0 && b <= 0xbf) strLen = b & 0x1f;
    else if (b >= 0x80 && b <= 0x8f) open = { left: (b & 0x0f) * 2, map: true };
    else if (b >= 0x90 && b <= 0x9f) open = { left: b & 0x0f, map: false };
    else {
      const lengthBytes = [0xd9, 0xc4, 0xc7].includes(b) ? 1 : [0xda, 0xc5, 0xc8, 0xdc, 0xde].includes(b) ? 2 : [0xdb, 0xc6, 0xc9, 0xdd, 0xdf].includes(b) ? 4 : 0;
      if (!need(lengthBytes)) return;
      switch (b) {
        case 0xd9: strLen = view.getUint8(pos); pos += 1; break;
        case 0xda: strLen = view.getUint16(pos); pos += 2; break;
        case 0xdb: strLen = view.getUint32(pos); pos += 4; break;
        case 0xc4: skip = 1 + view.getUint8(pos); break;
        case 0xc5: skip = 2 + view.getUint16(pos); break;
        case 0xc6: skip = 4 + view.getUint32(pos); break;
        case 0xc7: skip = 2 + view.getUint8(pos); break;
        case 0xc8: skip = 3 + view.getUint16(pos); break;
        case 0xc9: skip = 5 + view.getUint32(pos); break;
        case 0xca: skip = 4; break;
        case 0xcb: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break;
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: open = { left: view.getUint16(pos), map: false }; pos += 2; break;
        case 0xdd: open = { left: view.getUint32(pos), map: false }; pos += 4; break;
        case 0xde: open = { left: view.getUint16(pos) * 2, map: true }; pos += 2; break;
        case 0xdf: open = { left: view.getUint32(pos) * 2, map: true }; pos += 4; break;
        default: return;
      }
    }
    if (strLen >= 0) {
      if (!need(strLen)) return;
      let text: string;
      try {
        text = utf8.decode(bytes.subarray(pos, pos + strLen));
      } catch {
        throw new SwitchboardError('invalid_field', 'a string is not valid UTF-8');
      }
      if (isKey && text === '__proto__') throw new SwitchboardError('invalid_field', '__proto__ must be absent (it cannot be carried as a key)');
      pos += strLen;
    } else pos += skip;
    if (open && open.left > 0) stack.push({ ...open, index: 0 });
  }
}

/** The error message thrown, or 'ok'. */
function outcome(check: (b: Uint8Array) => void, bytes: Uint8Array): string {
  try {
    check(bytes);
    return 'ok';
  } catch (e) {
    return e instanceof SwitchboardError ? `${e.code}: ${e.message}` : `other: ${String(e)}`;
  }
}

/** Keys and text the rules care about: `__proto__` (also behind a byte order mark), non-ASCII, lone surrogates. */
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('__proto__', '\ufeff__proto__', '__proto_', '__proto__\ufeff', 'é', '😀', 'a\ud800b', '\udc00'),
);
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 20 }), tie('list'), tie('dict')),
  list: fc.array(tie('any'), { maxLength: 5 }),
  dict: fc.dictionary(text, tie('any'), { maxKeys: 5 }),
})).any;
/** Packed values with a few bytes overwritten (surrogate and continuation bytes among them) or cut short. */
const damaged = fc.tuple(value, fc.array(fc.tuple(fc.nat(), fc.constantFrom(0xed, 0xa0, 0x80, 0xbf, 0xc0, 0xff, 0xef, 0xf4, 0x90, 0xdf)), { maxLength: 3 }), fc.nat())
  .map(([v, flips, cut]) => {
    const bytes = Uint8Array.from(packr.pack(v));
    for (const [at, b] of flips) if (bytes.length > 0) bytes[at % bytes.length] = b;
    return cut % 5 === 0 && bytes.length > 0 ? bytes.subarray(0, cut % bytes.length) : bytes;
  });

describe('checkMessagePackText (issue 13: no string decoded)', () => {
  it('answers as the decoding walk did on packed values, damaged ones and random bytes', () => {
    fc.assert(fc.property(fc.oneof(value.map((v) => Uint8Array.from(packr.pack(v))), damaged, fc.uint8Array({ maxLength: 200 })), (bytes) => {
      expect(outcome(checkMessagePackText, bytes)).toBe(outcome(referenceCheck, bytes));
    }), { numRuns: 3000 });
  });

  it('refuses the keys the decoder would change, and only keys', () => {
    const proto = JSON.parse('{"data":{"__proto__":"x"}}');
    expect(outcome(checkMessagePackText, packr.pack(proto))).toMatch(/^invalid_field: .*: __proto__ must be absent/);
    expect(outcome(checkMessagePackText, packr.pack({ ['\ufeff__proto__']: 1 }))).toMatch(/^invalid_field: .*: __proto__ must be absent/);
    expect(outcome(checkMessagePackText, packr.pack({ text: '__proto__', a: ['__proto__'] }))).toBe('ok');
    const bad = Uint8Array.from(packr.pack({ text: 'aéb' }));
    bad[bad.indexOf(0xc3)] = 0xff;
    expect(outcome(checkMessagePackText, bad)).toMatch(/^invalid_field: .*: a string is not valid UTF-8$/);
  });
});
