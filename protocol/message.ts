import { SwitchboardError } from './errors.js';
import { id, invalid, invalidField, isObject, isWellFormed, oneOf, optionalId, optionalInt, optionalStr, optionalStringMap, str, type Json } from './fields.js';
import { MAX_PUSH_PAYLOAD_BYTES, minPushPayloadBytes, pushPayloadBytesBound } from './push-payload.js';
import { checkPushToken } from './push-token.js';
import { fail, ok, type Decoded } from './result.js';

/** Mobile operating systems and the vendor push service each one uses (PROTOCOL.md section 4). */
export const MOBILE_OS = ['ios', 'android', 'harmony', 'web'] as const;
export type MobileOs = (typeof MOBILE_OS)[number];

export type Vendor = 'apns' | 'fcm' | 'hms' | 'webpush';
export const VENDOR_OF: Readonly<Record<MobileOs, Vendor>> = { ios: 'apns', android: 'fcm', harmony: 'hms', web: 'webpush' };

export type Priority = 'high' | 'normal';

/** A chat message as a chat server hands it over (PROTOCOL.md section 3), plus the time it was accepted. */
export interface ChatMessage {
  readonly id: string;
  readonly to: string;
  readonly from?: string;
  readonly title?: string;
  readonly text?: string;
  readonly data?: Readonly<Record<string, string>>;
  readonly collapseKey?: string;
  readonly priority?: Priority;
  readonly ttlSeconds?: number;
  /** Section 4, quiet hours: an urgent message's vendor pushes are never silenced. Only `true` is kept. */
  readonly urgent?: true;
  /** Epoch ms when the message was durably accepted; sent to clients as `ts`. */
  readonly acceptedAt: number;
}

/** Largest accepted `POST /v1/messages` body and NATS `switchboard.send` payload. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
export const MAX_TITLE_CHARS = 1024;
export const MAX_TEXT_CHARS = 32 * 1024;
export const MAX_DATA_KEYS = 64;
export const MAX_COLLAPSE_KEY_CHARS = 64;
/** FCM's and APNs' longest time to live: 28 days. */
export const MAX_TTL_SECONDS = 28 * 24 * 3600;
/** Longest vendor push token; a Web Push subscription JSON is the largest kind. */
export const MAX_PUSH_TOKEN_CHARS = 4096;

/**
 * `data` keys a chat server may not use (section 3): FCM reserves `from`, `message_type`, `notification` and keys
 * starting with `google.` or `gcm.` (firebase.google.com/docs/cloud-messaging/concept-options, "reserved words";
 * FCM answers 400 INVALID_ARGUMENT), and Switchboard sets `messageId` and `sender` itself (section 5).
 */
export const RESERVED_DATA_KEYS: ReadonlySet<string> = new Set(['from', 'message_type', 'notification', 'messageId', 'sender']);
export const RESERVED_DATA_PREFIXES = ['google.', 'gcm.'] as const;

/** Throws `invalid_field` naming the first reserved key of `data` (see RESERVED_DATA_KEYS). */
export function checkDataKeys(data: Readonly<Record<string, string>> | undefined): void {
  if (data === undefined) return;
  for (const k of Object.keys(data)) {
    if (RESERVED_DATA_KEYS.has(k) || RESERVED_DATA_PREFIXES.some((p) => k.startsWith(p))) {
      throw invalidField(`data.${k}`, 'a key no vendor reserves and Switchboard does not set (section 3)');
    }
  }
}

/**
 * Validates a send request (HTTP body or NATS payload, already parsed). Errors: `invalid_request` (missing or
 * mistyped field), `invalid_field` (reserved `data` key, `__proto__` key, a string that is not well-formed
 * Unicode, i.e. not encodable as UTF-8), `payload_too_large` (section 3: the push payload would exceed 4096 bytes
 * even with `text` cut to nothing).
 */
export function decodeSendRequest(body: unknown, acceptedAt: number): Decoded<ChatMessage> {
  try {
    if (!isObject(body)) throw invalid('body', 'a JSON object');
    if (Object.hasOwn(body, '__proto__')) throw invalidField('__proto__', 'absent (it cannot be carried as a field)');
    // Read in contract order (the first bad field is the one reported), then built with only the fields present:
    // assigning in a fixed order keeps every message of one shape on one hidden class, where deleting the absent
    // ones (as before) turned each message into a slow dictionary object for the whole routing path.
    const msgId = id(body, 'id');
    const to = id(body, 'to');
    const from = optionalId(body, 'from');
    const title = optionalStr(body, 'title', MAX_TITLE_CHARS);
    const text = optionalStr(body, 'text', MAX_TEXT_CHARS);
    const data = optionalStringMap(body, 'data', MAX_DATA_KEYS, MAX_TEXT_CHARS);
    const collapseKey = optionalStr(body, 'collapseKey', MAX_COLLAPSE_KEY_CHARS);
    const priority = body.priority === undefined ? undefined : oneOf(body, 'priority', ['high', 'normal'] as const);
    const ttlSeconds = optionalInt(body, 'ttlSeconds', 0, MAX_TTL_SECONDS);
    const urgent = optionalUrgent(body);
    const msg = { id: msgId, to } as Mutable<ChatMessage>; // acceptedAt is set last, as the key order always was
    if (from !== undefined) msg.from = from;
    if (title !== undefined) msg.title = title;
    if (text !== undefined) msg.text = text;
    if (data !== undefined) msg.data = data;
    if (collapseKey !== undefined) msg.collapseKey = collapseKey;
    if (priority !== undefined) msg.priority = priority;
    if (ttlSeconds !== undefined) msg.ttlSeconds = ttlSeconds;
    if (urgent !== undefined) msg.urgent = urgent;
    msg.acceptedAt = acceptedAt;
    checkDataKeys(data);
    checkWellFormed(msg);
    // The exact figure builds every vendor's payload; the bound from lengths clears ordinary messages without that.
    const bytes = pushPayloadBytesBound(msg) > MAX_PUSH_PAYLOAD_BYTES ? minPushPayloadBytes(msg) : 0;
    if (bytes > MAX_PUSH_PAYLOAD_BYTES) {
      throw new SwitchboardError('payload_too_large', `title and data alone make a ${bytes}-byte push payload; the limit is ${MAX_PUSH_PAYLOAD_BYTES}`);
    }
    return ok(msg);
  } catch (e) {
    return fail(asProtocolError(e));
  }
}

/** A device registration (`PUT /v1/users/{u}/devices/{d}` body or `register` frame). */
export interface DeviceRegistration {
  readonly os: MobileOs;
  readonly token: string;
  /** Which configured app's credentials to push with; absent = the default app. */
  readonly app?: string;
}

export function decodeDeviceRegistration(body: unknown): Decoded<DeviceRegistration> {
  try {
    if (!isObject(body)) throw invalid('body', 'a JSON object');
    return ok(readRegistration(body));
  } catch (e) {
    return fail(asProtocolError(e));
  }
}

export function readRegistration(body: Json): DeviceRegistration {
  const os = oneOf(body, 'os', MOBILE_OS);
  const token = str(body, 'token', MAX_PUSH_TOKEN_CHARS);
  if (token.length === 0) throw invalid('token', 'a non-empty string');
  checkPushToken(os, token);
  const app = optionalId(body, 'app');
  return app === undefined ? { os, token } : { os, token, app };
}

function optionalUrgent(body: Json): true | undefined {
  const v = body.urgent;
  if (v === undefined || v === false) return undefined;
  if (v !== true) throw invalid('urgent', 'true or false');
  return true;
}

export function asProtocolError(e: unknown): SwitchboardError {
  return e instanceof SwitchboardError ? e : new SwitchboardError('invalid_request', String(e), { cause: e });
}

/** A ChatMessage while it is being built (its fields are readonly once it leaves the decoder). */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The string fields of a message, in the order the checks report them. */
const STRING_FIELDS = ['id', 'to', 'from', 'title', 'text', 'collapseKey'] as const;

/** Lone surrogates cannot be encoded as UTF-8 (a vendor would get U+FFFD): refused like a body that is not UTF-8. */
function checkWellFormed(msg: ChatMessage): void {
  for (const field of STRING_FIELDS) {
    const v = msg[field];
    if (v !== undefined && !isWellFormed(v)) throw invalidField(field, 'valid Unicode (UTF-8) text');
  }
  const data = msg.data;
  if (data === undefined) return;
  for (const k in data) {
    if (!isWellFormed(k) || !isWellFormed(data[k])) throw invalidField('data', 'valid Unicode (UTF-8) keys and values');
  }
}
