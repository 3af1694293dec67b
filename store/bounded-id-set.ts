import { hashId } from '../base/id-hash.js';

/** Ring positions of a set that has had ids, at least. */
const MIN_CAPACITY = 8;
/** Slot values besides `position + 1`. */
const EMPTY = 0;
const GONE = -1;
/** What an empty set holds instead of rings (one for all). */
const EMPTY_RING = new Int32Array(0);

/**
 * An insertion-ordered set of ids holding at most `max`: adding one more forgets the oldest. The read state of a user
 * (store/read-state.ts) keeps two: ids delivered and not read, ids read lately.
 *
 * Why not a `Set` (it was one): a delivery adds an id to its user's set and, once the set is full, deletes the
 * oldest, so every delivery changed a hash table of up to 1,000 strings, and each change of a cold table costs cache
 * misses on the table and on the strings it compares (a `Set` compares candidate keys by reading each string). With
 * 500 users at 1,000 unread each, that was ~1.5 µs per delivery in a loop of its own on the bench machine, and
 * ~12% of the node's CPU per message in the in-process benchmark (issue 13, bench/README.md). Here ids sit in a ring
 * in insertion order, their hashes (base/id-hash.ts) in a parallel `Int32Array`, and an open-addressing table of ring
 * positions (another `Int32Array`) finds them: a probe compares integers and reads an id only when the hashes match,
 * and forgetting the oldest needs no search by string (its hash is in the ring). actors/history.ts `RecentIds` is the
 * same idea for a ring that only ever drops its oldest; this one also deletes any id (a read) and keeps the order. No library offers a bounded insertion-ordered
 * string set with these costs; the rules are few (below), and test/store-bounded-id-set.test.ts checks them against a
 * plain model.
 *
 * Layout: ring positions `first`..`next - 1` (counters, position = counter & mask) hold ids or holes (deleted); the
 * slot table has twice the ring's capacity, so with at most `capacity` entries (ids plus deletion marks) it is never
 * more than half full and every probe run ends. When the ring or the table fills, `rebuild` copies the ids in order to
 * a ring of twice their count (at least MIN_CAPACITY) and places them afresh: O(count) after at least count changes,
 * so O(1) per change on average. An empty set holds no arrays at all.
 */
export class BoundedIdSet implements Iterable<string> {
  private ids: (string | undefined)[] = [];
  private hashes = EMPTY_RING;
  /** EMPTY, GONE (an id deleted: probes go on past it), or the id's ring position + 1. */
  private slots = EMPTY_RING;
  private capacity = 0;
  private first = 0;
  private next = 0;
  private live = 0;
  private gone = 0;

  /** `max`: ids kept at most (1 or more). `ids`: as `addAll`. */
  constructor(readonly max: number, ids?: Iterable<string>) {
    if (!(max >= 1)) throw new RangeError(`max must be 1 or more, got ${max}`);
    if (ids !== undefined) this.addAll(ids);
  }

  get size(): number {
    return this.live;
  }

  has(id: string): boolean {
    return this.live > 0 && this.slotOf(id, hashId(id)) >= 0;
  }

  /** Adds `id` as the newest unless it is here already (it then keeps its place); true when added. */
  add(id: string): boolean {
    const added = this.insert(id);
    this.trim();
    return added;
  }

  /**
   * Adds each id in order as `add` does, and forgets the oldest past `max` only after the last: as a `Set` filled
   * with them and then cut to its newest `max`, so an id that comes again keeps its first place even if it was the
   * oldest (one at a time, it would have been forgotten and come back as the newest).
   */
  addAll(ids: Iterable<string>): void {
    for (const id of ids) this.insert(id);
    this.trim();
  }

  /** True when `id` was here. */
  delete(id: string): boolean {
    if (this.live === 0) return false;
    const slot = this.slotOf(id, hashId(id));
    if (slot < 0) return false;
    this.forget(slot);
    return true;
  }

  /** Oldest first. The set must not change while this runs. */
  *[Symbol.iterator](): Iterator<string> {
    const mask = this.capacity - 1;
    for (let n = this.first; n < this.next; n++) {
      const id = this.ids[n & mask];
      if (id !== undefined) yield id;
    }
  }

  private insert(id: string): boolean {
    const h = hashId(id);
    if (this.live > 0 && this.slotOf(id, h) >= 0) return false;
    if (this.next - this.first >= this.capacity || this.live + this.gone >= this.capacity) this.rebuild(this.live + 1);
    const pos = this.next & (this.capacity - 1);
    this.next++;
    this.ids[pos] = id;
    this.hashes[pos] = h;
    this.place(h, pos);
    this.live++;
    return true;
  }

  private trim(): void {
    while (this.live > this.max) this.deleteOldest();
  }

  /** The slot holding `id`, or -1. */
  private slotOf(id: string, h: number): number {
    const slots = this.slots;
    const mask = slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = slots[i];
      if (v === EMPTY) return -1;
      if (v !== GONE && this.hashes[v - 1] === h && this.ids[v - 1] === id) return i;
    }
  }

  /** Puts ring position `pos` (hash `h`) in the first free slot of its probe run. */
  private place(h: number, pos: number): void {
    const slots = this.slots;
    const mask = slots.length - 1;
    let i = h & mask;
    while (slots[i] !== EMPTY) i = (i + 1) & mask;
    slots[i] = pos + 1;
  }

  /** Removes the id of `slot`: a deletion mark in the table, a hole in the ring (skipped once it is the oldest). */
  private forget(slot: number): void {
    const pos = this.slots[slot] - 1;
    this.slots[slot] = GONE;
    this.gone++;
    this.ids[pos] = undefined;
    this.live--;
    const mask = this.capacity - 1;
    while (this.first < this.next && this.ids[this.first & mask] === undefined) this.first++;
  }

  private deleteOldest(): void {
    const pos = this.first & (this.capacity - 1); // `forget` keeps `first` on an id
    const slots = this.slots;
    const mask = slots.length - 1;
    for (let i = this.hashes[pos] & mask; ; i = (i + 1) & mask) {
      if (slots[i] === pos + 1) return this.forget(i);
    }
  }

  /** Copies the ids in order into a ring with room for at least `count` more, and places them afresh. */
  private rebuild(count: number): void {
    let capacity = MIN_CAPACITY;
    while (capacity < 2 * count) capacity *= 2;
    const ids = new Array<string | undefined>(capacity).fill(undefined);
    const hashes = new Int32Array(capacity);
    const oldMask = this.capacity - 1;
    let n = 0;
    for (let k = this.first; k < this.next; k++) {
      const id = this.ids[k & oldMask];
      if (id === undefined) continue;
      ids[n] = id;
      hashes[n] = this.hashes[k & oldMask];
      n++;
    }
    this.ids = ids;
    this.hashes = hashes;
    this.slots = new Int32Array(2 * capacity); // all EMPTY (0)
    this.capacity = capacity;
    this.first = 0;
    this.next = n;
    this.gone = 0;
    for (let pos = 0; pos < n; pos++) this.place(hashes[pos], pos);
  }
}
