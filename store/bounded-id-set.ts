import { hashId } from '../base/id-hash.js';

/** Positions of a set that has had ids, at least. */
const MIN_CAPACITY = 8;
/** Slot values besides `position + 1`. */
const EMPTY = 0;
const GONE = -1;
/** What a set that never had an id holds instead of typed arrays (one for all). */
const NO_ROWS = new Int32Array(0);

/**
 * An insertion-ordered set of ids holding at most `max`: adding one more forgets the oldest. The read state of a user
 * (store/read-state.ts) keeps two: ids delivered and not read, ids read lately.
 *
 * Why not a `Set` (it was one): a delivery adds an id to its user's set and, once the set is full, deletes the
 * oldest, so every delivery changed a hash table of up to 1,000 strings, and each change of a cold table costs cache
 * misses on the table and on the strings it compares (a `Set` compares candidate keys by reading each string). With
 * 500 users at 1,000 unread each, that was ~1.7 µs per delivery in a loop of its own on the bench machine (~0.55 µs
 * here), and 10-14% of the node's CPU per message in the in-process benchmark (2-5% here; issue 13, bench/README.md
 * "A fifth VM"). Ids sit in an array in insertion order, their hashes (base/id-hash.ts) in a parallel `Int32Array`,
 * and an open-addressing table of positions (another `Int32Array`) finds them: a probe compares integers and reads an
 * id only when the hashes match, and forgetting the oldest needs no search by string (its hash is at its position).
 * actors/history.ts `RecentIds` is the same idea for a ring that only ever drops its oldest; this one also deletes
 * any id (a read) and keeps the order. No library offers a bounded insertion-ordered string set with these costs;
 * the rules are few (below), and test/store-bounded-id-set.test.ts checks them against a plain model.
 *
 * Layout: positions `first` to `next - 1` hold ids or holes (deleted ones); `next` = ids + deletion marks since the
 * last rebuild, so the slot table, twice the positions' `capacity`, is never more than half full and every probe run
 * ends. When the positions run out, `rebuild` moves the ids in order to the front, into arrays of at least twice
 * their count (the same arrays when that is their size: no garbage at the bound), and places them afresh: O(count)
 * after at least count changes, so O(1) per change amortized. A set that never had an id, or emptied with more than
 * the smallest arrays, holds no typed arrays.
 */
export class BoundedIdSet implements Iterable<string> {
  private ids: (string | undefined)[] = [];
  private hashes = NO_ROWS;
  /** EMPTY, GONE (an id deleted: probes go on past it), or the id's position + 1. */
  private slots = NO_ROWS;
  private capacity = 0;
  private first = 0;
  private next = 0;
  private live = 0;

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

  /** The ids, oldest first, in a fresh array (what a store writes). */
  toArray(): string[] {
    const out = new Array<string>(this.live);
    let n = 0;
    for (let pos = this.first; pos < this.next; pos++) {
      const id = this.ids[pos];
      if (id !== undefined) out[n++] = id;
    }
    return out;
  }

  /** Oldest first (over a copy: the set may change meanwhile). */
  [Symbol.iterator](): Iterator<string> {
    return this.toArray()[Symbol.iterator]();
  }

  private insert(id: string): boolean {
    const h = hashId(id);
    if (this.live > 0 && this.slotOf(id, h) >= 0) return false;
    if (this.next >= this.capacity) this.rebuild(this.live + 1);
    const pos = this.next++;
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

  /** Puts position `pos` (hash `h`) in the first free slot of its probe run. */
  private place(h: number, pos: number): void {
    const slots = this.slots;
    const mask = slots.length - 1;
    let i = h & mask;
    while (slots[i] !== EMPTY) i = (i + 1) & mask;
    slots[i] = pos + 1;
  }

  /** Removes the id of `slot`: a deletion mark in the table, a hole at its position (skipped once it is the oldest). */
  private forget(slot: number): void {
    const pos = this.slots[slot] - 1;
    this.slots[slot] = GONE;
    this.ids[pos] = undefined;
    this.live--;
    if (this.live === 0) return this.emptied();
    while (this.first < this.next && this.ids[this.first] === undefined) this.first++;
  }

  /**
   * The last id is gone (a user read everything): the smallest arrays are kept and cleared, larger ones let go, so a
   * set that emptied after a backlog holds no memory for it and one that goes 0, 1, 0 allocates nothing.
   */
  private emptied(): void {
    this.first = this.next = 0;
    if (this.capacity === MIN_CAPACITY) {
      this.slots.fill(EMPTY);
      return;
    }
    this.ids = [];
    this.hashes = this.slots = NO_ROWS;
    this.capacity = 0;
  }

  private deleteOldest(): void {
    const pos = this.first; // `forget` keeps `first` on an id
    const slots = this.slots;
    const mask = slots.length - 1;
    for (let i = this.hashes[pos] & mask; ; i = (i + 1) & mask) {
      if (slots[i] === pos + 1) return this.forget(i);
    }
  }

  /** Moves the ids in order to the front of arrays with room for at least `count`, and places them afresh. */
  private rebuild(count: number): void {
    let capacity = MIN_CAPACITY;
    while (capacity < 2 * count) capacity *= 2;
    const same = capacity === this.capacity;
    const ids = same ? this.ids : new Array<string | undefined>(capacity).fill(undefined);
    const hashes = same ? this.hashes : new Int32Array(capacity);
    let n = 0;
    for (let pos = this.first; pos < this.next; pos++) {
      const id = this.ids[pos];
      if (id === undefined) continue;
      ids[n] = id; // n <= pos: moving forward in the same arrays never overwrites an id not yet moved
      hashes[n] = this.hashes[pos];
      n++;
    }
    if (same) {
      ids.fill(undefined, n); // let go of the ids that were moved or deleted
      this.slots.fill(EMPTY);
    } else {
      this.ids = ids;
      this.hashes = hashes;
      this.slots = new Int32Array(2 * capacity); // all EMPTY (0)
      this.capacity = capacity;
    }
    this.first = 0;
    this.next = n;
    for (let pos = 0; pos < n; pos++) this.place(hashes[pos], pos);
  }
}
