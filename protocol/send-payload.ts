import { Unpackr } from 'msgpackr';
import { SwitchboardError } from './errors.js';
import { decodeSendRequest, MAX_MESSAGE_BYTES, type ChatMessage } from './message.js';
import { checkMessagePackText } from './msgpack-check.js';
import { fail, type Decoded } from './result.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** How a send request is encoded: HTTP is JSON; NATS is MessagePack unless the header says JSON (section 3). */
export type SendEncoding = 'json' | 'msgpack';

/**
 * Decodes the raw bytes of one send request (`POST /v1/messages` body, `switchboard.send` payload) into a message.
 * Errors, never thrown: `body_too_large` (over 64 KiB), `invalid_field` (text that is not valid UTF-8, section 3;
 * a `__proto__` key), `bad_json` (not JSON / not MessagePack), then whatever `decodeSendRequest` refuses.
 */
export function decodeSendBytes(bytes: Uint8Array, encoding: SendEncoding, acceptedAt: number): Decoded<ChatMessage> {
  const parsed = parseSendBytes(bytes, encoding);
  return parsed.ok ? decodeSendRequest(parsed.value, acceptedAt) : parsed;
}

/**
 * The parse step of `decodeSendBytes` alone: size limit (bytes, default 64 KiB; batches pass theirs), strict
 * UTF-8 and `__proto__` checks, then JSON or MessagePack.
 */
export function parseSendBytes(bytes: Uint8Array, encoding: SendEncoding, limit = MAX_MESSAGE_BYTES): Decoded<unknown> {
  if (bytes.length > limit) return fail(new SwitchboardError('body_too_large', `${bytes.length} bytes; the limit is ${limit}`));
  try {
    if (encoding === 'json') return { ok: true, value: parseJsonUtf8(bytes) };
    checkMessagePackText(bytes);
    try {
      return { ok: true, value: unpackr.unpack(bytes) };
    } catch {
      throw new SwitchboardError('bad_json', 'payload is not valid MessagePack (send JSON with Content-Type: application/json)', { whole: true });
    }
  } catch (e) {
    return fail(e instanceof SwitchboardError ? e : new SwitchboardError('bad_json', String(e)));
  }
}

/** Strict UTF-8 then JSON: a body that is not UTF-8 is `invalid_field` (section 3), not JSON with U+FFFD in it. */
export function parseJsonUtf8(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new SwitchboardError('invalid_field', 'body must be valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new SwitchboardError('bad_json');
  }
}
