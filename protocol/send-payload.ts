import { Unpackr } from 'msgpackr';
import { SwitchboardError } from './errors.js';
import { isId, isMessageId, isObject } from './fields.js';
import { decodeSendRequest, MAX_MESSAGE_BYTES, type ChatMessage } from './message.js';
import { MAX_PUSH_PAYLOAD_BYTES, pushPayloadFloorOver } from './push-payload.js';
import { checkMessagePackText } from './msgpack-check.js';
import { fail, type Decoded } from './result.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** How a send request is encoded: HTTP is JSON; NATS is MessagePack unless the header says JSON (section 3). */
export type SendEncoding = 'json' | 'msgpack';

/**
 * How much of one send request is read and parsed although only MAX_MESSAGE_BYTES are accepted: enough to tell a
 * message whose push payload cannot fit (413 payload_too_large, section 3) from a body that is only over our own
 * size limit (413 body_too_large), for the bodies a chat server sends by mistake (a big `data` value, an attachment
 * inlined). 1 MiB, NATS's default max_payload, so HTTP and `switchboard.send` answer alike; a larger body is refused
 * unread (body_too_large).
 */
export const MAX_SEND_READ_BYTES = 1024 * 1024;

/**
 * Decodes the raw bytes of one send request (`POST /v1/messages` body, `switchboard.send` payload) into a message.
 * Errors, never thrown: `invalid_field` (text that is not valid UTF-8, section 3; a `__proto__` key), `bad_json` (not
 * JSON / not MessagePack), then whatever `decodeSendRequest` refuses; over MAX_MESSAGE_BYTES, see `oversizeSendError`.
 */
export function decodeSendBytes(bytes: Uint8Array, encoding: SendEncoding, acceptedAt: number): Decoded<ChatMessage> {
  if (bytes.length > MAX_MESSAGE_BYTES) return fail(oversizeSendError(bytes, encoding));
  const parsed = parseSendBytes(bytes, encoding);
  return parsed.ok ? decodeSendRequest(parsed.value, acceptedAt) : parsed;
}

/**
 * The answer to a send request over MAX_MESSAGE_BYTES (64 KiB, our own limit: section 3 sets none for a message body):
 * 413 `payload_too_large` when it holds a message whose push payload would exceed 4096 bytes even with `text` cut to
 * nothing, the answer section 3 names for exactly that message whatever else is wrong with it; else 413
 * `body_too_large`, the code of every other body over its limit (batch, policy, device bodies, README "Error codes").
 * Not `payload_too_large` for every oversize body: one that is mostly `text` (cut to fit at send time) or whitespace
 * may hold a message whose payload fits, and that code would send its author to shorten the wrong fields. Told by
 * `pushPayloadFloorOver` on the parsed body (a lower bound: a body it cannot tell is `body_too_large`, a 413 too).
 * A body over MAX_SEND_READ_BYTES was not read to its end (HTTP) and is not parsed: `body_too_large`.
 */
export function oversizeSendError(bytes: Uint8Array, encoding: SendEncoding): SwitchboardError {
  const tooLarge = new SwitchboardError('body_too_large', `${bytes.length} bytes; the limit is ${MAX_MESSAGE_BYTES}`);
  if (bytes.length > MAX_SEND_READ_BYTES) return tooLarge;
  const parsed = parseSendBytes(bytes, encoding, MAX_SEND_READ_BYTES);
  // A message at all (an object with a valid `id` and `to`, section 3's first checks) whose floor passes the limit.
  const m = parsed.ok && isObject(parsed.value) && isMessageId(parsed.value.id) && isId(parsed.value.to) ? parsed.value : undefined;
  const floor = m === undefined ? undefined : pushPayloadFloorOver(m, MAX_PUSH_PAYLOAD_BYTES);
  if (floor === undefined) return tooLarge;
  return new SwitchboardError('payload_too_large', `title and data alone make a push payload of at least ${floor} bytes; the limit is ${MAX_PUSH_PAYLOAD_BYTES}`);
}

/**
 * The parse step of `decodeSendBytes` alone: size limit (bytes, default 64 KiB; batches pass theirs), strict
 * UTF-8 and `__proto__` checks, then JSON or MessagePack.
 */
export function parseSendBytes(bytes: Uint8Array, encoding: SendEncoding, limit = MAX_MESSAGE_BYTES): Decoded<unknown> {
  if (bytes.length > limit) return fail(new SwitchboardError('body_too_large', `${bytes.length} bytes; the limit is ${limit}`));
  try {
    if (encoding === 'json') return { ok: true, value: parseJsonUtf8(bytes) };
    // 0xc1 is "never used" (MessagePack spec); msgpackr decodes it to an object of its own instead of refusing it.
    if (bytes[0] === 0xc1) throw new SwitchboardError('bad_json', 'payload is not valid MessagePack (send JSON with Content-Type: application/json)', { whole: true });
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
