import { SwitchboardError } from './errors.js';
import { checkStringMap, copyStringMap, id, invalid, invalidField, isId, isObject, isWellFormed, MAX_ID_CHARS, messageId, oneOf, optionalString, type Json } from './fields.js';
import { MAX_PUSH_PAYLOAD_BYTES, payloadOverflow, pushPayloadBytesBound, pushPayloadBytesFloor, pushPayloadFloorOver, type PayloadOverflow } from './push-payload.js';
import { checkPushToken } from './push-token.js';
import { fail, ok, type Decoded } from './result.js';

/** Mobile operating systems and the vendor push service each one uses (PROTOCOL.md section 4). */
export const MOBILE_OS = ['ios', 'android', 'harmony', 'web'] as const;
export type MobileOs = (typeof MOBILE_OS)[number];

/** One of MOBILE_OS (section 2 `register`, section 3 `PUT …/devices`). */
export function isMobileOs(v: unknown): v is MobileOs {
  return typeof v === 'string' && (MOBILE_OS as readonly string[]).includes(v);
}

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
  /**
   * Cluster only: the message's sequence in the JetStream ingress stream, set by the owner as it consumes it
   * (cluster/jetstream-ingress.ts). A user's messages share one partition's subject of that stream, so this is their
   * accept order (section 4 replays held messages "in accept order") whatever the clocks of the gateways that
   * stamped `acceptedAt`. Never read from a request, never sent to clients or vendors.
   */
  readonly acceptSeq?: number;
}

/**
 * A comparator of accept order (section 4) for `all`, messages of one user: by `acceptSeq` when every one has it (the
 * cluster's ingress sequence), else by `acceptedAt`. One key for the whole set, so the order is total: compared pair
 * by pair, a mix (messages held before `acceptSeq` was stamped, beside newer ones) could order in a circle.
 */
export function acceptOrderFor(all: readonly ChatMessage[]): (a: ChatMessage, b: ChatMessage) => number {
  return all.every((m) => m.acceptSeq !== undefined) ? (a, b) => a.acceptSeq! - b.acceptSeq! : (a, b) => a.acceptedAt - b.acceptedAt;
}

/** Largest accepted `POST /v1/messages` body and NATS `switchboard.send` payload. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/*
 * Our own limits on a message's fields, where section 3 is silent (lengths in UTF-16 code units). They are checked
 * after section 3's push payload rule: a message over one of them whose push payload cannot fit is 413
 * payload_too_large, the answer the contract names for it; one that could fit is 400 invalid_request.
 */
export const MAX_TITLE_CHARS = 1024;
/** Of a `data` value. `text` has no limit of its own: section 5 shortens it to fit a push, so only the body limit bounds it. */
export const MAX_DATA_VALUE_CHARS = 32 * 1024;
export const MAX_DATA_KEYS = 64;
export const MAX_DATA_KEY_CHARS = 256;
export const MAX_COLLAPSE_KEY_CHARS = 64;
/** FCM's and APNs' longest time to live: 28 days. */
export const MAX_TTL_SECONDS = 28 * 24 * 3600;

/**
 * `data` keys a chat server may not use (section 3): FCM reserves `from`, `message_type`, `notification` and keys
 * starting with `google.` or `gcm.` (firebase.google.com/docs/cloud-messaging/concept-options, "reserved words";
 * FCM answers 400 INVALID_ARGUMENT), and Switchboard sets `messageId` and `sender` itself (section 5).
 */
export const RESERVED_DATA_KEYS: ReadonlySet<string> = new Set(['from', 'message_type', 'notification', 'messageId', 'sender']);
/**
 * Reserved prefixes, matched in any case: FCM refuses `GOOGLE.x` and `Gcm.x` as it does `google.x` (a key accepted
 * here and refused there was a message answered 202 whose push could only fail).
 */
export const RESERVED_DATA_PREFIXES = ['google.', 'gcm.'] as const;

/** Throws `invalid_field` naming the first reserved key of `data` (see RESERVED_DATA_KEYS, RESERVED_DATA_PREFIXES). */
export function checkDataKeys(data: Readonly<Record<string, string>> | undefined): void {
  if (data === undefined) return;
  for (const k of Object.keys(data)) {
    if (RESERVED_DATA_KEYS.has(k) || RESERVED_DATA_PREFIXES.some((p) => k.length >= p.length && k.slice(0, p.length).toLowerCase() === p)) {
      throw invalidField(`data.${k.slice(0, 64)}`, 'a key no vendor reserves and Switchboard does not set (section 3)');
    }
  }
}

/**
 * Validates a send request (HTTP body or NATS payload, already parsed; a batch's messages one by one), in three
 * steps, each reporting the first bad field in contract order:
 * 1. the contract's shape and values (section 3): `invalid_request` for a missing or mistyped field or an `id`/`to`
 *    that is not 1-128 characters; `invalid_field` for a reserved `data` key, a `__proto__` key, or a string that is
 *    not well-formed Unicode (not encodable as UTF-8);
 * 2. section 3's push payload rule: `payload_too_large` (413) when the push payload would exceed 4096 bytes even with
 *    `text` cut to nothing (checked before `data` is copied when `id`, `from`, `title` and `data` alone certainly
 *    exceed it: `pushPayloadFloorOver`);
 * 3. our own limits where the contract is silent (MAX_TITLE_CHARS and the rest above, `from` 1-128 printable
 *    characters, `ttlSeconds` an integer 0-MAX_TTL_SECONDS): `invalid_request`. After step 2, so that a message over
 *    both gets the answer the contract names for it.
 */
export function decodeSendRequest(body: unknown, acceptedAt: number): Decoded<ChatMessage> {
  try {
    if (!isObject(body)) throw invalid('body', 'an object (a JSON object, or a MessagePack map on NATS)');
    if (Object.hasOwn(body, '__proto__')) throw invalidField('__proto__', 'absent (it cannot be carried as a field)');
    // Read in contract order (the first bad field is the one reported), then built with only the fields present:
    // assigning in a fixed order keeps every message of one shape on one hidden class, where deleting the absent
    // ones (as before) turned each message into a slow dictionary object for the whole routing path.
    const msgId = messageId(body, 'id');
    const to = id(body, 'to');
    const from = optionalString(body, 'from');
    const title = optionalString(body, 'title');
    const text = optionalString(body, 'text');
    const rawData = checkStringMap(body, 'data');
    checkDataKeys(rawData);
    const collapseKey = optionalString(body, 'collapseKey');
    const priority = body.priority === undefined ? undefined : oneOf(body, 'priority', ['high', 'normal'] as const);
    const ttlSeconds = optionalNumber(body, 'ttlSeconds', TTL_RULE);
    const urgent = optionalUrgent(body);
    // Step 2 early for a message that certainly cannot fit: its `data` (maybe a hundred thousand keys in a body of up
    // to 1 MiB, see MAX_SEND_READ_BYTES) is then never copied.
    const floor = pushPayloadFloorOver(body, MAX_PUSH_PAYLOAD_BYTES);
    if (floor !== undefined) throw payloadTooLarge(`at least ${floor}`);
    const data = rawData === undefined ? undefined : copyStringMap(rawData);
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
    checkWellFormed(msg);
    checkPushPayload(msg);
    checkOwnLimits(msg);
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

/**
 * The registration in a `PUT …/devices/{d}` body or a `register` frame. Errors, all `invalid_field` (section 3: "The
 * token must fit its OS …, app must be a configured app: else 400 invalid_field"): an `os` that is not one of
 * MOBILE_OS (absent or unknown: no token can fit it), a token that does not fit its OS, whatever is wrong with it
 * (absent, mistyped, empty, too long, bad characters: `checkPushToken`), and an `app` that cannot be a configured
 * app's name (whether a well-formed name is configured is the gateway's check).
 */
export function readRegistration(body: Json): DeviceRegistration {
  const os = body.os;
  if (!isMobileOs(os)) throw invalidField('os', `one of ${MOBILE_OS.map((o) => `"${o}"`).join(', ')}`);
  const given = body.token;
  checkPushToken(os, given);
  // An APNs device token is bytes written in hex: one token in either case is one device, and section 3 holds a token
  // by one (user, device) at a time, so it is kept in one case (lower, as apps print it), the one compared and pushed.
  const token = os === 'ios' ? given.toLowerCase() : given;
  const app = body.app;
  if (app === undefined) return { os, token };
  if (!isId(app)) throw invalidField('app', `the name of a configured app (a string of 1-${MAX_ID_CHARS} printable characters)`);
  return { os, token, app };
}

/** The rule `ttlSeconds` is checked against (type in step 1, value in step 3 of `decodeSendRequest`). */
const TTL_RULE = `an integer 0-${MAX_TTL_SECONDS}`;

/** A number (-0 read as 0: it would not survive a round trip through JSON), or undefined when absent. */
function optionalNumber(obj: Json, field: string, must: string): number | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw invalid(field, must);
  return v === 0 ? 0 : v;
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

/**
 * Section 3: 413 payload_too_large when the message's push payload would exceed 4096 bytes even with `text` cut to
 * nothing. Two cheap figures from the fields' lengths settle nearly every message: under the upper bound it fits
 * (ordinary messages); over the lower bound it cannot (a title or `data` far too large, which the body limits let
 * reach megabytes, is never serialised). Only between the two are the vendor payloads built and measured.
 */
function checkPushPayload(msg: ChatMessage): void {
  if (pushPayloadBytesBound(msg) <= MAX_PUSH_PAYLOAD_BYTES) return;
  const floor = pushPayloadBytesFloor(msg);
  if (floor > MAX_PUSH_PAYLOAD_BYTES) throw payloadTooLarge(`at least ${floor}`);
  const over = payloadOverflow(msg);
  if (over !== undefined) throw payloadTooLargeFor(over);
}

/** Each vendor's name with its article, as the refusal says it. */
const VENDOR_NAMES: Readonly<Record<PayloadOverflow['vendor'], string>> = { apns: 'an APNs', fcm: 'an FCM', hms: 'a Huawei Push Kit', webpush: 'a Web Push' };

/**
 * The exact refusal: which vendor's payload is over and by how much. Any vendor counts, whatever devices the user has
 * now: a held message may go to a device registered later. The estimate keeps room for what is not known at the edge
 * (an APNs badge), and the message says so.
 */
function payloadTooLargeFor(over: PayloadOverflow): SwitchboardError {
  const room = over.vendor === 'apns' ? ' (counting room for the badge)' : '';
  return new SwitchboardError('payload_too_large', `title and data alone make ${VENDOR_NAMES[over.vendor]} push payload of ${over.bytes} bytes${room}; the limit is ${over.limit}`);
}

function payloadTooLarge(bytes: string): SwitchboardError {
  return new SwitchboardError('payload_too_large', `title and data alone make a push payload of ${bytes} bytes; the limit is ${MAX_PUSH_PAYLOAD_BYTES}`);
}

/** Step 3 of `decodeSendRequest`: our own limits (see MAX_TITLE_CHARS), `invalid_request` naming the field. */
function checkOwnLimits(msg: ChatMessage): void {
  if (msg.from !== undefined && !isId(msg.from)) throw invalid('from', `a string of 1-${MAX_ID_CHARS} printable characters`);
  if (msg.title !== undefined && msg.title.length > MAX_TITLE_CHARS) throw invalid('title', `a string of at most ${MAX_TITLE_CHARS} characters`);
  const data = msg.data;
  if (data !== undefined) {
    const keys = Object.keys(data);
    if (keys.length > MAX_DATA_KEYS) throw invalid('data', `an object of at most ${MAX_DATA_KEYS} keys`);
    for (const k of keys) {
      if (k.length > MAX_DATA_KEY_CHARS) throw invalid('data', `an object whose keys are at most ${MAX_DATA_KEY_CHARS} characters`);
      if (data[k].length > MAX_DATA_VALUE_CHARS) throw invalid(`data.${k}`, `a string of at most ${MAX_DATA_VALUE_CHARS} characters`);
    }
  }
  if (msg.collapseKey !== undefined && msg.collapseKey.length > MAX_COLLAPSE_KEY_CHARS) {
    throw invalid('collapseKey', `a string of at most ${MAX_COLLAPSE_KEY_CHARS} characters`);
  }
  const ttl = msg.ttlSeconds;
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 0 && ttl <= MAX_TTL_SECONDS)) throw invalid('ttlSeconds', TTL_RULE);
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
