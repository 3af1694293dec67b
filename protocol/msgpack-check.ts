import { isUtf8 } from 'node:buffer';
import { SwitchboardError } from './errors.js';

/** `__proto__` as bytes (ASCII), and the UTF-8 byte order mark a fatal TextDecoder drops before comparing text. */
const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];
const BOM = [0xef, 0xbb, 0xbf];

/**
 * The containers still open while walking, kept between calls (the walk is synchronous, so one set serves every
 * call): items still to read, whether it is a map, and items read so far (a map's even items are keys).
 */
const lefts: number[] = [];
const isMap: boolean[] = [];
const indexes: number[] = [];

/**
 * Walks a MessagePack document (msgpack spec, github.com/msgpack/msgpack/blob/master/spec.md) without building it
 * and throws `invalid_field` for what a decoder would silently change: a str that is not valid UTF-8 (msgpackr
 * decodes it to U+FFFD) and a map key `__proto__` (msgpackr renames it `__proto_`). Structure errors are left to
 * the decoder, which runs next; this only reads as far as the bytes go.
 *
 * It decodes no string (issue 13): an ASCII str is valid as it is, any other is checked by `isUtf8` (the same rule
 * as a fatal TextDecoder: no overlong forms, no surrogates, nothing above U+10FFFF), and the key is compared as
 * bytes. Decoding every str with a TextDecoder cost a string and a view each, and was 4.7% of the cluster nodes'
 * CPU at max rate (three times msgpackr's own decoding of the same request).
 */
export function checkMessagePackText(bytes: Uint8Array): void {
  const end = bytes.length;
  let depth = 0;
  let pos = 0;
  while (pos < end) {
    let isKey = false;
    if (depth > 0) {
      const top = depth - 1;
      isKey = isMap[top] && indexes[top] % 2 === 0;
      indexes[top]++;
      if (--lefts[top] === 0) depth--;
    }
    const b = bytes[pos++];
    let strLen = -1;
    let skip = 0;
    let open = 0;
    let map = false;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) skip = 0;
    else if (b >= 0xa0 && b <= 0xbf) strLen = b & 0x1f;
    else if (b >= 0x80 && b <= 0x8f) (open = (b & 0x0f) * 2), (map = true);
    else if (b >= 0x90 && b <= 0x9f) open = b & 0x0f;
    else {
      if (pos + lengthBytes(b) > end) return;
      switch (b) {
        case 0xd9: strLen = bytes[pos]; pos += 1; break;
        case 0xda: strLen = uint16(bytes, pos); pos += 2; break;
        case 0xdb: strLen = uint32(bytes, pos); pos += 4; break;
        case 0xc4: skip = 1 + bytes[pos]; break;
        case 0xc5: skip = 2 + uint16(bytes, pos); break;
        case 0xc6: skip = 4 + uint32(bytes, pos); break;
        case 0xc7: skip = 2 + bytes[pos]; break;
        case 0xc8: skip = 3 + uint16(bytes, pos); break;
        case 0xc9: skip = 5 + uint32(bytes, pos); break;
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
        case 0xdc: open = uint16(bytes, pos); pos += 2; break;
        case 0xdd: open = uint32(bytes, pos); pos += 4; break;
        case 0xde: (open = uint16(bytes, pos) * 2), (map = true); pos += 2; break;
        case 0xdf: (open = uint32(bytes, pos) * 2), (map = true); pos += 4; break;
        default: return; // 0xc1 is never used: the decoder reports it
      }
    }
    if (strLen >= 0) {
      if (pos + strLen > end) return;
      if (!isAscii(bytes, pos, pos + strLen) && !isUtf8(bytes.subarray(pos, pos + strLen))) {
        throw new SwitchboardError('invalid_field', 'a string is not valid UTF-8');
      }
      if (isKey && isProtoKey(bytes, pos, strLen)) throw new SwitchboardError('invalid_field', '__proto__ must be absent (it cannot be carried as a key)');
      pos += strLen;
    } else pos += skip;
    if (open > 0) {
      lefts[depth] = open;
      isMap[depth] = map;
      indexes[depth] = 0;
      depth++;
    }
  }
}

function uint16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function uint32(b: Uint8Array, at: number): number {
  return b[at] * 0x1000000 + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
}

function isAscii(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] >= 0x80) return false;
  return true;
}

/** The key reads `__proto__` once decoded (a leading byte order mark is dropped by the decoder, so it counts too). */
function isProtoKey(b: Uint8Array, at: number, len: number): boolean {
  if (len === PROTO_KEY.length + BOM.length && BOM.every((x, i) => b[at + i] === x)) (at += BOM.length), (len -= BOM.length);
  return len === PROTO_KEY.length && PROTO_KEY.every((x, i) => b[at + i] === x);
}

/** Bytes of the length field after a type byte with a length (0 for fixed-size types). */
function lengthBytes(b: number): number {
  switch (b) {
    case 0xd9: case 0xc4: case 0xc7: return 1;
    case 0xda: case 0xc5: case 0xc8: case 0xdc: case 0xde: return 2;
    case 0xdb: case 0xc6: case 0xc9: case 0xdd: case 0xdf: return 4;
    default: return 0;
  }
}
