/**
 * Message ids seen within a sliding time window, for `duplicate` answers. Ids live in generations (time slices of
 * the window) split into shards, each a small Map: a whole generation is dropped when it leaves the window (no per-id
 * pruning), and no single Map grows large enough for its rehash to stall the event loop (a Map of 1M entries takes
 * ~90 ms to grow here) or to reach V8's limit of 2^24 entries at high rates.
 */
export class DedupeWindow {
  private readonly gens = new Map<number, Map<string, number>[]>();
  private readonly spanMs: number;

  /**
   * `generations`: time slices of the window; a lookup of a new id (nearly every accept) probes each live one, so
   * few (issue 13: 16 slices cost ~1 µs per accept); memory holds up to one slice more than the window.
   * `shards`: maps per slice, so a million ids within one window stay under ~10,000 per map.
   */
  constructor(private readonly windowMs: number, private readonly shards = 32, generations = 4) {
    this.spanMs = Math.max(1, Math.ceil(windowMs / generations));
  }

  /** When `id` was accepted, if it is still remembered (the caller compares with the window). */
  seenAt(id: string): number | undefined {
    const s = shardOf(id, this.shards);
    for (const gen of this.gens.values()) {
      const at = gen[s].get(id);
      if (at !== undefined) return at;
    }
    return undefined;
  }

  add(id: string, at: number): void {
    const key = Math.floor(at / this.spanMs);
    let gen = this.gens.get(key);
    if (gen === undefined) {
      gen = Array.from({ length: this.shards }, () => new Map<string, number>());
      this.gens.set(key, gen);
    }
    gen[shardOf(id, this.shards)].set(id, at);
  }

  /** Drops the generations wholly older than the window. */
  prune(now: number): void {
    const horizon = now - this.windowMs;
    for (const key of this.gens.keys()) if ((key + 1) * this.spanMs <= horizon) this.gens.delete(key);
  }

  get size(): number {
    let n = 0;
    for (const gen of this.gens.values()) for (const m of gen) n += m.size;
    return n;
  }
}

/**
 * FNV-1a over the id's last 8 UTF-16 units and its length: ids differ at the end (counters, UUIDs, timestamps), and
 * this runs twice per accept, so the whole id (up to 128 characters) is not worth hashing. A skewed spread only
 * makes one shard larger, never an answer wrong.
 */
function shardOf(id: string, shards: number): number {
  let h = Math.imul(0x811c9dc5 ^ id.length, 0x01000193);
  for (let i = Math.max(0, id.length - 8); i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}
