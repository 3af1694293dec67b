/**
 * A 32-bit hash of a message id, for the id tables over typed arrays (store/dedupe-window.ts, actors/history.ts,
 * store/bounded-id-set.ts; they compare the id itself on a hash match, so a collision costs a probe, never a wrong
 * answer). FNV-1a over every UTF-16 unit of the id, then murmur3's finalizer so the low bits (the slot) depend on all
 * of it; never 0 (the empty slot of the tables that store hashes). Not keyed: ids come only from API-key holders (the
 * chat servers, trusted), so a deliberately colliding set is not defended against; it would lengthen the probes of
 * the tables it lands in, never change an answer.
 */
export function hashId(id: string): number {
  let h = 0x811c9dc5 ^ id.length;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h;
}
