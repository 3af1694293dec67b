import { SwitchboardError } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const PROTO_KEY = '__proto__';

/**
 * Walks a MessagePack document (msgpack spec, github.com/msgpack/msgpack/blob/master/spec.md) without building it
 * and throws `invalid_field` for what a decoder would silently change: a str that is not valid UTF-8 (msgpackr
 * decodes it to U+FFFD) and a map key `__proto__` (msgpackr renames it `__proto_`). Structure errors are left to
 * the decoder, which runs next; this only reads as far as the bytes go.
 */
export function checkMessagePackText(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Per open container: items still to read and, for maps, whether the next item is a key.
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
      if (!need(lengthBytes(b))) return;
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
        default: return; // 0xc1 is never used: the decoder reports it
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
      if (isKey && text === PROTO_KEY) throw new SwitchboardError('invalid_field', '__proto__ must be absent (it cannot be carried as a key)');
      pos += strLen;
    } else pos += skip;
    if (open && open.left > 0) stack.push({ ...open, index: 0 });
  }
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
