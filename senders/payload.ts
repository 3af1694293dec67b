import { MAX_PAYLOAD_BYTES } from './vendor.js';

const ELLIPSIS = '…';

/**
 * Builds a vendor body whose serialized size is at most `limit` bytes by shortening the text (issue 3 part 7):
 * binary search over the number of code points kept, cut on a character boundary, ellipsis appended.
 * `build(text)` returns the serialized body for a given text. Returns undefined when even an empty text
 * does not fit (the other fields alone are too large).
 */
export function fitPayload(text: string, build: (text: string) => string, limit = MAX_PAYLOAD_BYTES): { body: string; truncated: boolean } | undefined {
  const full = build(text);
  if (Buffer.byteLength(full) <= limit) return { body: full, truncated: false };
  const chars = Array.from(text);
  let lo = 0;
  let hi = chars.length - 1;
  let best: string | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const body = build(chars.slice(0, mid).join('') + ELLIPSIS);
    if (Buffer.byteLength(body) <= limit) {
      best = body;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (best !== undefined) return { body: best, truncated: true };
  const empty = build('');
  return Buffer.byteLength(empty) <= limit ? { body: empty, truncated: true } : undefined;
}
