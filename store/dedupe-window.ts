import { hashId } from '../base/id-hash.js';

/**
 * Message ids seen within a sliding time window, for `duplicate` answers. Ids live in generations (time slices of
 * the window): a whole generation is dropped when it leaves the window, so there is no per-id pruning.
 *
 * Each generation is split by hash into SHARDS open-addressing hash tables over typed arrays, not Maps (issue 13:
 * with Maps, the lookup every new message makes, a miss in each generation, and the insert once it is durable were
 * ~6% of the node's CPU under batched load; a Map miss reads a bucket, an entry and the stored key's hash, 2-4 cache
 * misses per generation, where a [hash, index] pair of a table is one; 1M ids within the window: a miss and an
 * insert took ~1.1 µs with 4 generations of sharded Maps, ~0.3-0.5 µs here). A table doubles by re-placing its stored
 * hashes without reading an id, and the shards keep each doubling small (2M ids in one generation: the largest
 * takes ~3 ms, where one unsharded table took 36 ms at 1M and a Map of 1M entries ~90 ms); a generation starts at
 * the size the previous one reached, so a steady rate grows nothing.
 */
export class DedupeWindow {
  /** Newest generation first (by key: `acceptedAt` / span). */
  private gens: IdGeneration[] = [];
  private readonly spanMs: number;

  /**
   * `generations`: time slices of the window; a lookup of a new id (nearly every accept) probes each live one, so
   * few (issue 13: 16 slices cost ~1 µs per accept with Maps); memory holds up to one slice more than the window.
   */
  constructor(private readonly windowMs: number, generations = 4) {
    this.spanMs = Math.max(1, Math.ceil(windowMs / generations));
  }

  /** When `id` was last accepted, if it is still remembered (the caller compares with the window). */
  seenAt(id: string): number | undefined {
    const hash = hashId(id);
    // Newest first: an id accepted again after the window is answered with its latest time, not its expired one.
    for (const gen of this.gens) {
      const at = gen.find(id, hash);
      if (at !== undefined) return at;
    }
    return undefined;
  }

  add(id: string, at: number): void {
    const key = Math.floor(at / this.spanMs);
    let gen = this.gens[0];
    if (gen === undefined || gen.key !== key) gen = this.generation(key);
    gen.set(id, hashId(id), at);
  }

  /** Drops the generations wholly older than the window. */
  prune(now: number): void {
    const horizon = now - this.windowMs;
    const gens = this.gens;
    while (gens.length > 0 && (gens[gens.length - 1].key + 1) * this.spanMs <= horizon) gens.pop();
  }

  get size(): number {
    let n = 0;
    for (const gen of this.gens) n += gen.size;
    return n;
  }

  /** Slots of the largest table of any generation; for tests of the sizing. */
  get largestTable(): number {
    let slots = 0;
    for (const gen of this.gens) for (const table of gen.tables) slots = Math.max(slots, table.capacity);
    return slots;
  }

  /** The generation of `key`, created (sized like the newest one) when missing; `gens` stays newest first. */
  private generation(key: number): IdGeneration {
    const gens = this.gens;
    let i = 0;
    while (i < gens.length && gens[i].key > key) i++;
    if (i < gens.length && gens[i].key === key) return gens[i];
    const gen = new IdGeneration(key, gens.length > 0 ? gens[0].size : 0);
    gens.splice(i, 0, gen);
    return gen;
  }
}

/** Tables per generation, chosen by the hash's top 4 bits (the slot comes from the low bits). */
const SHARDS = 16;
/** Smallest table: 64 slots (512 bytes). */
const MIN_SLOTS = 64;

/** One time slice of the window: its ids in SHARDS tables. */
class IdGeneration {
  readonly tables: IdTable[] = [];

  /** `expected`: ids the generation will likely hold (the previous one's count), so a steady rate never grows a table. */
  constructor(readonly key: number, expected: number) {
    for (let i = 0; i < SHARDS; i++) this.tables.push(new IdTable(Math.ceil(expected / SHARDS)));
  }

  get size(): number {
    let n = 0;
    for (const table of this.tables) n += table.size;
    return n;
  }

  find(id: string, hash: number): number | undefined {
    return this.tables[hash >>> 28].find(id, hash);
  }

  set(id: string, hash: number, at: number): void {
    this.tables[hash >>> 28].set(id, hash, at);
  }
}

/**
 * Ids and their times in insertion order, found through `table`: [hash, index] pairs with linear probing, at most
 * half full. Hash 0 marks an empty slot (`hashId` never returns 0).
 */
class IdTable {
  private table: Int32Array;
  private mask: number;
  private readonly ids: string[] = [];
  private readonly ats: number[] = [];

  constructor(expected: number) {
    let slots = MIN_SLOTS;
    while (slots < expected * 2) slots *= 2;
    this.table = new Int32Array(slots * 2);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.ids.length;
  }

  get capacity(): number {
    return this.mask + 1;
  }

  find(id: string, hash: number): number | undefined {
    const { table, mask } = this;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const h = table[slot * 2];
      if (h === 0) return undefined;
      if (h === hash) {
        const index = table[slot * 2 + 1];
        if (this.ids[index] === id) return this.ats[index];
      }
    }
  }

  /** Inserts `id`, or moves its time to `at` when it is here already. */
  set(id: string, hash: number, at: number): void {
    const { table, mask } = this;
    let slot = hash & mask;
    for (; ; slot = (slot + 1) & mask) {
      const h = table[slot * 2];
      if (h === 0) break;
      if (h === hash) {
        const index = table[slot * 2 + 1];
        if (this.ids[index] === id) {
          this.ats[index] = at;
          return;
        }
      }
    }
    table[slot * 2] = hash;
    table[slot * 2 + 1] = this.ids.length;
    this.ids.push(id);
    this.ats.push(at);
    if (this.ids.length * 2 > this.capacity) this.grow();
  }

  /** Doubles the table, re-placing the stored hashes (no id is read). */
  private grow(): void {
    const old = this.table;
    const slots = this.capacity * 2;
    const table = new Int32Array(slots * 2);
    const mask = slots - 1;
    for (let i = 0; i < old.length; i += 2) {
      const h = old[i];
      if (h === 0) continue;
      let slot = h & mask;
      while (table[slot * 2] !== 0) slot = (slot + 1) & mask;
      table[slot * 2] = h;
      table[slot * 2 + 1] = old[i + 1];
    }
    this.table = table;
    this.mask = mask;
  }
}
