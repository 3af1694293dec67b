import { hashId } from '../base/id-hash.js';
import type { Decision } from '../protocol/index.js';

/** Per-actor memory of past message ids; lives only while the actor does (dropped at passivation). Decisions: decision-history.ts. */

/** Slots of a new ring; it doubles up to the capacity. */
const FIRST_SLOTS = 8;

/**
 * Last message ids routed to this user, each with its `acceptedAt` (epoch ms): a redelivered `route` (the same
 * accepted message handed out again: a JetStream redelivery, an inbox replay after a crash) is settled again instead
 * of delivered twice. The same id accepted anew, after the dedupe window (SWITCHBOARD_DEDUPE_WINDOW_MS) let it be
 * answered 202 again, has another `acceptedAt` and is routed: a message answered accepted reaches the user (it was
 * answered 202 and then dropped without a decision).
 *
 * A ring of ids found through an open-addressing table over typed arrays (linear probing, at most half full,
 * backward-shift deletion), not a Set: a Set that drops its oldest id for every new one fills with deleted entries
 * and is rehashed into a new table every few hundred ids, in old space once the actor has lived a while (issue 13:
 * ~90 bytes of old-space garbage per routed message). Here, once the ring has reached its capacity, `add` allocates
 * nothing. Ids are compared in full on a hash match (base/id-hash.ts), so a collision never makes a false `has`.
 */
export class RecentIds {
  /** The ring: ids in arrival order until full, then `next` is the oldest, overwritten by the next add. */
  private readonly ids: string[] = [];
  /** `acceptedAt` of `ids[i]`, index for index (a plain array of doubles: no typed array's header per actor). */
  private readonly stamps: number[] = [];
  /** `hashId` of `ids[i]`, index for index; its length is the ring's allocated slots. */
  private hashes?: Int32Array;
  /** Open addressing: ring index + 1 per slot, 0 for empty. */
  private table?: Uint16Array;
  private mask = 0;
  private next = 0;
  private readonly capacity: number;

  /** `capacity`: ids remembered (1-32767). */
  constructor(capacity = 256) {
    this.capacity = Math.max(1, Math.min(32_767, Math.floor(capacity) || 1));
  }

  /** Whether `id` was added with this `acceptedAt` (and not pushed out since). */
  has(id: string, acceptedAt: number): boolean {
    if (this.table === undefined) return false;
    const slot = this.slotOf(id, hashId(id));
    return slot >= 0 && this.stamps[this.table[slot] - 1] === acceptedAt;
  }

  /** Remembers `id` as routed with `acceptedAt`; an id remembered already takes the newer `acceptedAt`. */
  add(id: string, acceptedAt: number): void {
    const hash = hashId(id);
    if (this.table !== undefined) {
      const slot = this.slotOf(id, hash);
      if (slot >= 0) {
        this.stamps[this.table[slot] - 1] = acceptedAt;
        return;
      }
    }
    let i: number;
    if (this.ids.length < this.capacity) {
      i = this.ids.length;
      this.ids.push(id);
      this.stamps.push(acceptedAt);
      if (this.hashes === undefined || i >= this.hashes.length) this.grow(i + 1);
    } else {
      i = this.next;
      this.next = (i + 1) % this.capacity;
      this.unplace(i);
      this.ids[i] = id;
      this.stamps[i] = acceptedAt;
    }
    this.hashes![i] = hash;
    this.place(i, hash);
  }

  /** The table slot holding `id`, or -1. */
  private slotOf(id: string, hash: number): number {
    const table = this.table!;
    const mask = this.mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const v = table[slot];
      if (v === 0) return -1;
      if (this.hashes![v - 1] === hash && this.ids[v - 1] === id) return slot;
    }
  }

  private place(i: number, hash: number): void {
    const table = this.table!;
    let slot = hash & this.mask;
    while (table[slot] !== 0) slot = (slot + 1) & this.mask;
    table[slot] = i + 1;
  }

  /** Takes ring index `i` out of the table; later entries of its probe run move back so no lookup stops early. */
  private unplace(i: number): void {
    const table = this.table!;
    const mask = this.mask;
    let hole = this.hashes![i] & mask;
    while (table[hole] !== i + 1) hole = (hole + 1) & mask;
    table[hole] = 0;
    for (let j = (hole + 1) & mask; table[j] !== 0; j = (j + 1) & mask) {
      const home = this.hashes![table[j] - 1] & mask;
      // The entry at j may move to the hole unless its home lies cyclically within (hole, j].
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (stays) continue;
      table[hole] = table[j];
      table[j] = 0;
      hole = j;
    }
  }

  /** Room for at least `n` ids: a bigger ring of hashes and a table of twice as many slots, rebuilt. */
  private grow(n: number): void {
    let slots = this.hashes?.length ?? FIRST_SLOTS;
    while (slots < n) slots *= 2;
    slots = Math.min(slots, this.capacity);
    const hashes = new Int32Array(slots);
    if (this.hashes !== undefined) hashes.set(this.hashes);
    this.hashes = hashes;
    let tableSlots = 2;
    while (tableSlots < slots * 2) tableSlots *= 2;
    this.table = new Uint16Array(tableSlots);
    this.mask = tableSlots - 1;
    for (let k = 0; k < this.ids.length - 1; k++) this.place(k, hashes[k]); // the newest is placed by `add`
  }
}

export function copyDecision(d: Decision): Decision {
  return { ...d, targets: d.targets.map((t) => ({ ...t })) };
}
