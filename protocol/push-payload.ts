/*
 * The push payloads of the four vendors as pure functions of the message (PROTOCOL.md section 5), and the one rule
 * for fitting them: only `text` is shortened, at a grapheme boundary, with an ellipsis. The senders build their
 * request bodies from these; the edge asks `payloadOverflow` whether a message can fit at all (413
 * payload_too_large, section 3). On the wire floor so both can: no Node API, sizes counted in UTF-8 here.
 */

/** Largest push payload every vendor accepts (PROTOCOL.md section 5: "Push payloads never exceed 4096 bytes"). */
export const MAX_PAYLOAD_BYTES = 4096;
/** The same limit under the name the message decoder uses. */
export const MAX_PUSH_PAYLOAD_BYTES = MAX_PAYLOAD_BYTES;

/**
 * The parts of a ChatMessage (protocol/message.ts) that go into a push payload. Structural, so this module needs
 * nothing from message.ts (which imports it: no import cycle).
 */
export interface PayloadFields {
  readonly id: string;
  readonly from?: string;
  readonly title?: string;
  readonly text?: string;
  readonly data?: Readonly<Record<string, string>>;
  readonly collapseKey?: string;
  readonly priority?: 'high' | 'normal';
  readonly ttlSeconds?: number;
}

/** The four push vendors (protocol/message.ts `Vendor`, spelled out for the same reason). */
export type PayloadVendor = 'apns' | 'fcm' | 'hms' | 'webpush';

const ELLIPSIS = '…';
/** Largest Web Push plaintext whose aes128gcm body (86-byte header, 1 padding delimiter, 16-byte tag) stays within 4096 bytes (RFC 8291). */
export const WEBPUSH_MAX_PLAINTEXT_BYTES = MAX_PAYLOAD_BYTES - 86 - 1 - 16;

// One segmenter for the process: constructing one costs far more than segmenting a notification text.
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * The longest prefix of `text` (whole grapheme clusters, so an emoji of several code points or a letter with its
 * combining marks is never split), with an ellipsis when shortened, for which `size(text)` is at most `limit` bytes.
 * `''` when not even the ellipsis fits; undefined when not even an empty text fits. Binary search over UTF-16
 * units, then back to the grapheme boundary at or before the cut: segmenting only there, not the whole text.
 * A cut never splits a surrogate pair while measuring: a lone surrogate is escaped by JSON as `\udxxx` (6 bytes, more
 * than the whole pair's 4), so the size would not grow with the cut and the search could stop short of the longest
 * prefix that fits.
 */
export function fitText(text: string, size: (text: string) => number, limit = MAX_PAYLOAD_BYTES): string | undefined {
  if (size(text) <= limit) return text;
  let lo = 0;
  let hi = text.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (size(text.slice(0, pairWhole(text, mid)) + ELLIPSIS) <= limit) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (best >= 0) {
    // The cluster holding the first unit left out starts at the last boundary at or before the cut.
    const boundary = best === 0 ? 0 : graphemes.segment(text).containing(best)!.index;
    return text.slice(0, boundary) + ELLIPSIS;
  }
  return size('') <= limit ? '' : undefined;
}

/** `cut`, or one unit less when the unit before it is the high half of a surrogate pair (the cut would split it). */
function pairWhole(text: string, cut: number): number {
  const c = text.charCodeAt(cut - 1);
  return cut > 0 && c >= 0xd800 && c <= 0xdbff ? cut - 1 : cut;
}

/**
 * APNs body `{"aps":{"alert":{"title","body"}},"messageId","sender","data"}` (section 5); APNs counts all of it.
 * `silent` (quiet hours): `interruption-level` `passive` and no `sound` key; Apple: a passive notification is added to
 * the list "without lighting up the screen or playing a sound" (Generating a remote notification, aps dictionary keys).
 */
export function apnsPayload(m: PayloadFields, text: string, silent = false, badge?: number): string {
  const alert = { title: m.title, body: text };
  // `badge` (section 4, read sync): the user's unread count; left out (undefined) when unknown.
  return JSON.stringify({ aps: silent ? { alert, badge, 'interruption-level': 'passive' } : { alert, badge }, messageId: m.id, sender: m.from, data: m.data });
}

/** FCM `message.data`: the chat server's data plus `messageId` and `sender` (section 5; `from` is reserved by FCM). */
export function fcmData(m: PayloadFields): Record<string, string> {
  const data: Record<string, string> = { ...m.data, messageId: m.id };
  // The key is Switchboard's: a chat server's `sender` never stands in for a missing `from`.
  if (m.from !== undefined) data.sender = m.from;
  else delete data.sender;
  return data;
}

/** FCM `message.notification`, or undefined for a message with neither title nor text. */
export function fcmNotification(m: PayloadFields, text: string): { title?: string; body?: string } | undefined {
  if (m.title === undefined && m.text === undefined) return undefined;
  return { ...(m.title !== undefined ? { title: m.title } : {}), ...(m.text !== undefined ? { body: text } : {}) };
}

/** What FCM counts against its 4096-byte limit: the notification and the data ("Maximum payload ... 4096 bytes"). */
export function fcmPayload(m: PayloadFields, text: string): string {
  return JSON.stringify({ notification: fcmNotification(m, text) ?? {}, data: fcmData(m) });
}

/** Push Kit `message.data`, a JSON string: `{"messageId","sender","data"}`. */
export function hmsData(m: PayloadFields): string {
  return JSON.stringify({ messageId: m.id, ...(m.from !== undefined ? { sender: m.from } : {}), data: m.data ?? {} });
}

/**
 * Push Kit's launcher badge on a notification message, `android.notification.badge` (Push Kit server API,
 * AndroidNotification.badge / BadgeNotification): `class` is the app's entry activity (required for any badge),
 * `set_num` the number shown, 0-99. Section 4: the badge of an alert is the user's unread count, capped at 99 here.
 */
export interface HmsBadge {
  /** Fully qualified class name of the app's entry activity, e.g. `com.example.chat.MainActivity`. */
  class: string;
  /** The user's unread count (set as is up to HMS_MAX_BADGE). */
  count: number;
}

/** Push Kit BadgeNotification.set_num range: 0-99. */
export const HMS_MAX_BADGE = 99;

/** What `isHmsBadgeClass` accepts, as configuration errors say it ("<setting> must be " + this). */
export const HMS_BADGE_CLASS_RULE = "the app's entry activity class (at most 255 characters), like com.example.chat.MainActivity";

/** Whether `s` is an entry activity's class name as Push Kit's `badge.class` takes it: a package-qualified Java name, at most 255 characters. */
export function isHmsBadgeClass(s: string): boolean {
  return s.length <= 255 && /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$/.test(s);
}

/**
 * The Push Kit request body (Push Kit limits it to 4096 bytes, its tokens not counted: `hmsCountedBytes`). Its
 * `android.collapse_key` is a small integer group (-1..100), not a string, so `collapseKey` becomes the notification
 * `tag`: a newer notification with the same tag replaces the older one on the device. `badge` goes on notification
 * messages only.
 */
export function hmsBody(m: PayloadFields, text: string, token: string, silent = false, badge?: HmsBadge): string {
  const android: Record<string, unknown> = { urgency: m.priority === 'normal' ? 'NORMAL' : 'HIGH' };
  if (m.ttlSeconds !== undefined) android.ttl = `${m.ttlSeconds}s`;
  if (m.title !== undefined || m.text !== undefined) {
    android.notification = {
      title: m.title ?? '',
      body: text,
      click_action: { type: 3 }, // 3 = open the app's launcher activity
      ...(m.collapseKey !== undefined ? { tag: m.collapseKey } : {}),
      // Quiet hours: Push Kit's AndroidNotification.importance LOW is a silent notification (no sound, no banner).
      ...(silent ? { importance: 'LOW' } : {}),
      ...(badge !== undefined ? { badge: { class: badge.class, set_num: Math.min(Math.max(0, Math.trunc(badge.count)), HMS_MAX_BADGE) } } : {}),
    };
  }
  return JSON.stringify({ validate_only: false, message: { data: hmsData(m), android, token: [token] } });
}

/**
 * The Web Push plaintext the service worker receives: `{"title","body","messageId","sender","data"}`. `silent` (quiet
 * hours) is for the service worker's showNotification({ silent }): no sound, no vibration.
 */
export function webPushPayload(m: PayloadFields, text: string, silent = false): string {
  return JSON.stringify({ title: m.title, body: text, messageId: m.id, sender: m.from, data: m.data ?? {}, ...(silent ? { silent: true } : {}) });
}

/**
 * The bytes of a Push Kit request body as Push Kit counts them against its 4096: without the device tokens (Push Kit
 * server API, Sending Messages: "The message body cannot exceed 4096 bytes (excluding token)"), i.e. the body with
 * `message.token` an empty list. So the limit does not depend on the device, and the edge, which knows no tokens,
 * measures exactly what the sender does.
 */
export function hmsCountedBytes(m: PayloadFields, text: string, silent = false, badge?: HmsBadge): number {
  // hmsBody with the token '' writes `"token":[""]`; Push Kit's count has `"token":[]`, two bytes less.
  return utf8Length(hmsBody(m, text, '', silent, badge)) - 2;
}

/**
 * Room kept in the APNs measure for an `aps.badge` (read sync, section 4: `,"badge":99999`), so the estimate never
 * undercounts what a sender adds.
 */
const APNS_BADGE_ALLOWANCE = 15;

/** Per vendor: the bytes its limit counts for a given text (the larger, quiet-hours variant), and that limit. */
const MEASURES: { [V in PayloadVendor]: { size: (m: PayloadFields, text: string) => number; limit: number } } = {
  apns: { size: (m, t) => utf8Length(apnsPayload(m, t, true)) + APNS_BADGE_ALLOWANCE, limit: MAX_PAYLOAD_BYTES },
  fcm: { size: (m, t) => utf8Length(fcmPayload(m, t)), limit: MAX_PAYLOAD_BYTES },
  hms: { size: (m, t) => hmsCountedBytes(m, t, true), limit: MAX_PAYLOAD_BYTES },
  webpush: { size: (m, t) => utf8Length(webPushPayload(m, t, true)), limit: WEBPUSH_MAX_PLAINTEXT_BYTES },
};

/** Why a message can never be pushed: the first vendor whose payload is too large with the text cut to nothing. */
export interface PayloadOverflow {
  vendor: PayloadVendor;
  /** Payload size with an empty text, in bytes. */
  bytes: number;
  /** That vendor's limit, in bytes (4096; Web Push 3993 of plaintext). */
  limit: number;
}

/**
 * Whether the message's push payload exceeds a vendor's limit even with `text` cut to nothing (title, data and ids
 * alone too large), for any of the four vendor bodies; undefined when every vendor body can be made to fit. The
 * edge refuses such a message with 413 payload_too_large (PROTOCOL.md section 3). Pure: no I/O, no configuration.
 */
export function payloadOverflow(m: PayloadFields): PayloadOverflow | undefined {
  for (const vendor of Object.keys(MEASURES) as PayloadVendor[]) {
    const { size, limit } = MEASURES[vendor];
    const bytes = size(m, '');
    if (bytes > limit) return { vendor, bytes, limit };
  }
  return undefined;
}

/**
 * The largest vendor payload of the message with `text` cut to nothing, on the 4096-byte scale (a Web Push plaintext
 * counts with its encryption overhead): over MAX_PUSH_PAYLOAD_BYTES exactly when `payloadOverflow` finds a vendor
 * body that cannot fit. The message decoder refuses such a message with 413 payload_too_large (section 3).
 */
export function minPushPayloadBytes(m: PayloadFields): number {
  let worst = 0;
  for (const vendor of Object.keys(MEASURES) as PayloadVendor[]) {
    const { size, limit } = MEASURES[vendor];
    worst = Math.max(worst, size(m, '') + (MAX_PAYLOAD_BYTES - limit));
  }
  return worst;
}

/**
 * Worst case of a UTF-16 code unit inside a vendor payload, in UTF-8 bytes: Push Kit's `message.data` is a JSON string
 * inside the JSON body, so a control character is escaped twice (`\u001f` becomes `\\u001f`, 7 bytes); a quote or
 * backslash takes 4, a unit of a non-ASCII character at most 3 (a 4-byte character is 2 units).
 */
const MAX_BYTES_PER_UNIT = 7;
/** Worst case of the quotes, colon and comma around one `data` entry, escaped twice (`\"k\":\"v\",`: 10 bytes). */
const MAX_BYTES_PER_DATA_ENTRY = 16;
/**
 * The largest vendor payload (on the 4096-byte scale) of a message whose every string is empty but present, and whose
 * `ttlSeconds` has 16 digits: what a payload holds besides the characters of the fields, plus a margin of 64 bytes.
 */
const FIXED_PAYLOAD_BYTES =
  minPushPayloadBytes({ id: '', from: '', title: '', text: '', data: {}, collapseKey: '', priority: 'normal', ttlSeconds: 1e15 }) + 64;

/**
 * An upper bound of `minPushPayloadBytes(m)` from the fields' lengths alone, without building a payload: at least
 * the exact figure for every message (test/payload.test.ts checks it on escape-heavy and non-ASCII messages). The edge
 * computes the exact figure only when this bound is over MAX_PUSH_PAYLOAD_BYTES, i.e. for messages near the limit.
 */
export function pushPayloadBytesBound(m: PayloadFields): number {
  let units = m.id.length + (m.from?.length ?? 0) + (m.title?.length ?? 0) + (m.collapseKey?.length ?? 0);
  let entries = 0;
  const data = m.data;
  if (data !== undefined) {
    for (const key in data) {
      units += key.length + data[key].length;
      entries++;
    }
  }
  return FIXED_PAYLOAD_BYTES + MAX_BYTES_PER_UNIT * units + MAX_BYTES_PER_DATA_ENTRY * entries;
}

/** Bytes every `data` entry adds to the APNs body at the least besides its key and value: `"k":"v"`'s quotes and colon. */
const MIN_DATA_ENTRY_BYTES = 5;

/**
 * A lower bound of `minPushPayloadBytes(m)` from the fields' lengths alone: the UTF-16 code units of `id`, `from`,
 * `title` and every `data` key and value, plus MIN_DATA_ENTRY_BYTES per entry. The APNs body carries each of them
 * (section 5), every code unit is at least one UTF-8 byte and JSON escaping only adds bytes. Over
 * MAX_PUSH_PAYLOAD_BYTES means the message cannot fit, without serialising fields that may be megabytes long
 * (test/payload.test.ts checks the bound).
 */
export function pushPayloadBytesFloor(m: PayloadFields): number {
  let units = m.id.length + (m.from?.length ?? 0) + (m.title?.length ?? 0);
  const data = m.data;
  if (data !== undefined) for (const key in data) units += key.length + data[key].length + MIN_DATA_ENTRY_BYTES;
  return units;
}

/**
 * `pushPayloadBytesFloor(body)` once it passes `limit` (bytes), for a send request not yet copied (a parsed JSON or
 * MessagePack object), or undefined when it stays within: fields of the wrong type count nothing (their own check
 * refuses them), and the count stops as soon as it passes `limit`, after at most ~limit / MIN_DATA_ENTRY_BYTES `data`
 * entries, so a request with a hundred thousand keys is refused (413 payload_too_large) without each being copied.
 */
export function pushPayloadFloorOver(body: Readonly<Record<string, unknown>>, limit: number): number | undefined {
  let units = 0;
  for (const field of ['id', 'from', 'title'] as const) {
    const v = body[field];
    if (typeof v === 'string') units += v.length;
  }
  if (units > limit) return units;
  const data = body.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  for (const key in data) {
    const v = (data as Record<string, unknown>)[key];
    units += key.length + MIN_DATA_ENTRY_BYTES + (typeof v === 'string' ? v.length : 0);
    if (units > limit) return units;
  }
  return undefined;
}

/** True when every vendor body of the message fits once its text is shortened (see `payloadOverflow`). */
export function payloadFits(m: PayloadFields): boolean {
  return payloadOverflow(m) === undefined;
}

/** The text to send to `vendor` so its payload fits, or undefined when nothing fits (see `payloadOverflow`). */
export function fittedText(m: PayloadFields, vendor: PayloadVendor, size?: (text: string) => number): string | undefined {
  const measure = MEASURES[vendor];
  return fitText(m.text ?? '', size ?? ((t) => measure.size(m, t)), measure.limit);
}

/** Bytes of `s` in UTF-8, as Buffer.byteLength counts them (a lone surrogate is U+FFFD, 3 bytes), without Node. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
