/**
 * Removing keys from a Map or Set that lives long and often empties, without making old-space garbage.
 *
 * Why this exists (issue 13, p99 at 10k msgs/s): V8 keeps a Map's or Set's entries in an ordered hash table that it
 * rehashes into a new backing store when the table fills up and when a delete leaves it under a quarter full, and it
 * allocates that new store in the generation the current one is in (V8 `OrderedHashTable::Rehash`). A table that
 * lives long is in old space, so a per-user or per-session table that goes 0 -> 1 -> 0 for every message allocates
 * ~156 bytes of old space per cycle (measured on Node 20: a loop of set + delete on one Map), which only a
 * mark-compact frees. Seven such tables on the routing path made ~900 of the ~1,800 bytes per routed message that
 * reached old space, a mark-compact every ~4 s at 10k msgs/s, and each one 20-30 ms of concurrent marking and
 * marking steps on the event loop: most of the send-to-receive p99. A table made afresh is young, and so are the
 * stores its rehashes allocate: they die in the next scavenge at no cost.
 *
 * Rule: where a table is dropped when empty (a lazily created one), `withoutKey` drops it instead of deleting its
 * last entry; where a table must always be there, `freshWhenEmptied` gives a new one instead.
 */

/**
 * `table` without `key`: the same table with `key` deleted, or `undefined` when `key` was its only entry (the
 * table is left as it was, for the garbage collector). For lazily created tables: `t = t && withoutKey(t, k)`.
 * Iterating `table` while calling this is safe as long as nothing is added during the loop (an emptied table is
 * no longer the one in use).
 */
export function withoutKey<K, V>(table: Map<K, V>, key: K): Map<K, V> | undefined;
export function withoutKey<K>(table: Set<K>, key: K): Set<K> | undefined;
export function withoutKey<K, V>(table: Map<K, V> | Set<K>, key: K): Map<K, V> | Set<K> | undefined {
  if (table.size === 1 && table.has(key)) return undefined;
  table.delete(key);
  return table;
}

/**
 * Deletes `key` from `table`, or returns a new empty table when `key` was its only entry. For tables that must
 * always exist: `this.t = freshWhenEmptied(this.t, k)`. Returns `table` itself in every other case.
 */
export function freshWhenEmptied<K, V>(table: Map<K, V>, key: K): Map<K, V>;
export function freshWhenEmptied<K>(table: Set<K>, key: K): Set<K>;
export function freshWhenEmptied<K, V>(table: Map<K, V> | Set<K>, key: K): Map<K, V> | Set<K> {
  if (table.size === 1 && table.has(key)) return table instanceof Map ? new Map<K, V>() : new Set<K>();
  table.delete(key);
  return table;
}
