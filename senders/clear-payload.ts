import { MAX_PAYLOAD_BYTES } from './vendor.js';

/**
 * The body of a clear push (section 4 read sync) built with as many of the newest `ids` as fit `limit` bytes (500 ids
 * of 128 characters would not): the badge stays exact, only the oldest ids' notifications may stay. Undefined when
 * not even an empty list fits.
 */
export function fitIds(ids: string[], build: (ids: string[]) => string, limit = MAX_PAYLOAD_BYTES): string | undefined {
  for (let keep = ids.length; keep >= 0; keep = keep > 8 ? Math.floor(keep * 0.8) : keep - 1) {
    const body = build(ids.slice(ids.length - keep));
    if (Buffer.byteLength(body) <= limit) return body;
  }
  return undefined;
}
