import type { Decision } from '../protocol/index.js';
import { packDecision, unpackDecision } from './decision-pack.js';

/** Decisions kept per user for `GET …/decisions` (PROTOCOL.md section 3: at least the last 100). */
export const DECISIONS_PER_USER = 100;
/** Default bound of all users' histories together (SWITCHBOARD_DECISION_HISTORY_BYTES). */
export const DEFAULT_DECISION_HISTORY_BYTES = 128 * 1024 * 1024;
/** Accounted per packed entry besides its characters: the string header and the ring slot. */
const ENTRY_OVERHEAD = 24;
/** Accounted per decision still in object form (targets not final yet). */
const OPEN_ENTRY_BYTES = 256;
/** Accounted per user: the ring object, its array, its list links and the map entry. */
const RING_OVERHEAD = 176;

/** One user's last decisions, oldest overwritten first; an entry is an object while it may change, then packed. */
class Ring {
  readonly entries: (string | Decision)[] = [];
  /** Neighbours in the least-recently-written list of `DecisionHistory`. */
  older?: Ring;
  newer?: Ring;
  next = 0;
  open = 0;
  bytes = RING_OVERHEAD;

  constructor(readonly user: string) {}

  add(d: Decision, capacity: number): number {
    const before = this.bytes;
    if (this.entries.length < capacity) this.entries.push(d);
    else {
      this.bytes -= sizeOf(this.entries[this.next]);
      if (typeof this.entries[this.next] !== 'string') this.open--;
      this.entries[this.next] = d;
      this.next = (this.next + 1) % capacity;
    }
    this.open++;
    this.bytes += OPEN_ENTRY_BYTES;
    return this.bytes - before;
  }

  /** Packs the entries whose targets are all final (all of them with `force`); returns the change in bytes. */
  seal(force: boolean): number {
    if (this.open === 0) return 0;
    const before = this.bytes;
    const n = this.entries.length;
    // Newest first, stopping once every open entry was seen: open entries are nearly always the last few.
    for (let k = 1, seen = 0, open = this.open; k <= n && seen < open; k++) {
      const i = (this.next - k + n) % n;
      const e = this.entries[i];
      if (typeof e === 'string') continue;
      seen++;
      if (!force && e.targets.some((t) => t.outcome === undefined)) continue;
      const packed = packDecision(e);
      this.entries[i] = packed;
      this.open--;
      this.bytes += sizeOf(packed) - OPEN_ENTRY_BYTES;
    }
    return this.bytes - before;
  }

  newest(limit: number): Decision[] {
    const out: Decision[] = [];
    const n = this.entries.length;
    // The newest entry sits just before `next` once the ring is full, else at the end.
    for (let k = 1; k <= n && out.length < limit; k++) {
      const e = this.entries[(this.next - k + n) % n];
      out.push(typeof e === 'string' ? unpackDecision(e) : copy(e));
    }
    return out;
  }
}

/**
 * Every user's recent decisions on this node, kept apart from the user actors so history outlives passivation
 * (issue 10 part 4). Memory is bounded twice: at most DECISIONS_PER_USER per user, and `maxBytes` for all users
 * together, past which the least recently written users' histories are dropped whole (exact LRU order). Not durable: a restart or a
 * partition moving to another node starts the history anew there.
 */
export class DecisionHistory {
  /** Each user's ring, for lookup; the order of writes is kept in the list below. */
  private readonly rings = new Map<string, Ring>();
  private total = 0;
  /** Every ring in a list from `lruHead` (least recently written) to `lruTail` (a classic LRU: a map for lookup, a list for order). */
  private lruHead?: Ring;
  private lruTail?: Ring;

  constructor(private readonly maxBytes = DEFAULT_DECISION_HISTORY_BYTES, private readonly perUser = DECISIONS_PER_USER) {}

  add(user: string, d: Decision): void {
    let ring = this.rings.get(user);
    if (ring === undefined) {
      ring = new Ring(user);
      this.total += ring.bytes;
      this.rings.set(user, ring);
      this.append(ring);
    } else if (ring !== this.lruTail) {
      // To the newest end of the list: pointer updates only. (Reordering the map itself, a delete and a set, left a
      // deleted entry per move that made V8 rehash the whole table in old space every few hundred moves, issue 13.)
      this.unlink(ring);
      this.append(ring);
    }
    this.total += ring.add(d, this.perUser);
    this.enforce(user);
  }

  /** Packs `user`'s settled decisions (after a message finished); `force` packs all (the actor passivates). */
  seal(user: string, force = false): void {
    const ring = this.rings.get(user);
    if (ring !== undefined) this.total += ring.seal(force);
  }

  /** Newest first, at most `limit`, as fresh objects (later outcome updates never race a reply being encoded). */
  newest(user: string, limit: number): Decision[] {
    return this.rings.get(user)?.newest(limit) ?? [];
  }

  /** Forgets the users matching `match` (cluster: their partition moved away). */
  drop(match: (user: string) => boolean): void {
    for (const [user, ring] of this.rings) {
      if (!match(user)) continue;
      this.forget(ring);
    }
  }

  /** Accounted bytes of every history, and how many users have one. */
  get stats(): { bytes: number; users: number } {
    return { bytes: this.total, users: this.rings.size };
  }

  /** Drops least recently written users (never `keep`, the one just written) until under the bound. */
  private enforce(keep: string): void {
    for (let ring = this.lruHead; ring !== undefined && this.total > this.maxBytes; ) {
      const newer = ring.newer;
      if (ring.user !== keep) this.forget(ring);
      ring = newer;
    }
  }

  private forget(ring: Ring): void {
    this.unlink(ring);
    this.rings.delete(ring.user);
    this.total -= ring.bytes;
  }

  private append(ring: Ring): void {
    ring.older = this.lruTail;
    ring.newer = undefined;
    if (this.lruTail !== undefined) this.lruTail.newer = ring;
    else this.lruHead = ring;
    this.lruTail = ring;
  }

  private unlink(ring: Ring): void {
    if (ring.older !== undefined) ring.older.newer = ring.newer;
    else this.lruHead = ring.newer;
    if (ring.newer !== undefined) ring.newer.older = ring.older;
    else this.lruTail = ring.older;
    ring.older = ring.newer = undefined;
  }
}

function sizeOf(e: string | Decision): number {
  return typeof e === 'string' ? e.length + ENTRY_OVERHEAD : OPEN_ENTRY_BYTES;
}

function copy(d: Decision): Decision {
  return { ...d, targets: d.targets.map((t) => ({ ...t })) };
}
