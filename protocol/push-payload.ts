/** The parts of a ChatMessage (protocol/message.ts) that go into every push payload whatever its text. */
export interface PayloadFields {
  readonly id: string;
  readonly from?: string;
  readonly title?: string;
  readonly data?: Readonly<Record<string, string>>;
  readonly collapseKey?: string;
}

/** Largest push payload (PROTOCOL.md section 5: "Push payloads never exceed 4096 bytes"). */
export const MAX_PUSH_PAYLOAD_BYTES = 4096;
/** aes128gcm overhead a Web Push payload adds to its plaintext (RFC 8188 header 86 bytes, delimiter 1, tag 16). */
const WEBPUSH_OVERHEAD_BYTES = 86 + 1 + 16;
/** Worst-case badge and TTL strings, so the estimate never undercounts what a sender adds later. */
const MAX_BADGE = 99_999;
const MAX_TTL = '2419200s';

/**
 * Bytes of the largest vendor payload for `msg` with `text` cut to nothing (section 3: such a message is refused
 * with 413 `payload_too_large` when this exceeds 4096). Shapes as section 5: APNs body, FCM/HMS `message` without
 * the device token (the token is not part of the payload limit), Web Push plaintext plus its encryption overhead.
 * Kept small on purpose: the senders' own payload builder may replace it.
 */
export function minPushPayloadBytes(msg: PayloadFields): number {
  const title = msg.title;
  const sender = msg.from;
  const apns = { aps: { alert: { title, body: '' }, badge: MAX_BADGE }, messageId: msg.id, sender, data: msg.data };
  const fcm = {
    message: {
      notification: { title, body: '' },
      data: { ...msg.data, messageId: msg.id, sender },
      android: { priority: 'normal', collapse_key: msg.collapseKey, ttl: MAX_TTL },
    },
  };
  const webpush = { title, body: '', messageId: msg.id, sender, data: msg.data ?? {} };
  return Math.max(bytes(apns), bytes(fcm), bytes(webpush) + WEBPUSH_OVERHEAD_BYTES);
}

function bytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v));
}
