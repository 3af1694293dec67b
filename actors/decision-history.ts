import { DECISIONS_PER_USER, type Decision } from '../protocol/index.js';
import { packDecision, packedAt, unpackDecision } from './decision-pack.js';

export { DECISIONS_PER_USER };
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
  /** Cluster: the previous owner's saved decisions were merged in (`merge`); a ring dropped and made anew looks again. */
  merged = false;
  /** Cluster: written behind to the decisions bucket at least once (`markSaved`); a ring made anew saves again soon. */
  saved = false;

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

  /**
   * Packs the entries whose targets are all final (all of them with `force`), handing each packed one to `sink`;
   * returns the change in bytes.
   */
  seal(force: boolean, sink: DecisionSink | undefined): number {
    if (this.open === 0) return 0;
    const before = this.bytes;
    const n = this.entries.length;
    // Packed newest first, handed to the sink oldest first (decisions of one millisecond keep their order on disk).
    let sunk: string[] | undefined;
    // Newest first, stopping once every open entry was seen: open entries are nearly always the last few.
    for (let k = 1, seen = 0, open = this.open; k <= n && seen < open; k++) {
      const i = (this.next - k + n) % n;
      const e = this.entries[i];
      if (typeof e === 'string') continue;
      seen++;
      if (!force && e.targets.some((t) => t.outcome === undefined)) continue;
      const packed = packDecision(e);
      this.entries[i] = packed;
      if (sink !== undefined) (sunk ??= []).push(packed);
      this.open--;
      this.bytes += sizeOf(packed) - OPEN_ENTRY_BYTES;
    }
    if (sunk !== undefined) for (let k = sunk.length - 1; k >= 0; k--) sink!(this.user, sunk[k]);
    return this.bytes - before;
  }

  /** The packed entries, oldest first (open ones left out). */
  packed(): string[] {
    const out: string[] = [];
    const n = this.entries.length;
    // Once the ring is full the oldest entry sits at `next`, else at 0.
    for (let k = 0; k < n; k++) {
      const e = this.entries[(this.next + k) % n];
      if (typeof e === 'string') out.push(e);
    }
    return out;
  }

  /** Fills an empty ring with packed entries, oldest first, at most `capacity` of them; returns the change in bytes. */
  fill(packed: readonly string[], capacity: number): number {
    const before = this.bytes;
    for (const e of packed.slice(-capacity)) {
      this.entries.push(e);
      this.bytes += sizeOf(e);
    }
    this.next = 0; // full or not, the oldest is at 0
    return this.bytes - before;
  }

  /** Puts `earlier` (oldest first) before the entries held, keeping the newest `capacity`; returns the change in bytes. */
  prepend(earlier: readonly string[], capacity: number): number {
    const before = this.bytes;
    const n = this.entries.length;
    const held: (string | Decision)[] = [];
    for (let k = 0; k < n; k++) held.push(this.entries[(this.next + k) % n]);
    const all = [...earlier, ...held].slice(-capacity);
    this.entries.length = 0;
    this.entries.push(...all);
    this.next = 0;
    this.open = 0;
    this.bytes = RING_OVERHEAD;
    for (const e of all) {
      if (typeof e !== 'string') this.open++;
      this.bytes += sizeOf(e);
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
 * Where each decision goes once it is packed (its targets final, or the actor passivating or stopping): the embedded
 * node's decision log (store/decision-log.ts), so the history outlives a restart. Called synchronously, in the order
 * the decisions were packed; must not throw.
 */
export type DecisionSink = (user: string, packed: string) => void;

/**
 * Every user's recent decisions on this node, kept apart from the user actors so history outlives passivation
 * (issue 10 part 4). Memory is bounded twice: at most DECISIONS_PER_USER per user, and `maxBytes` for all users
 * together, past which the least recently written users' histories are dropped whole (exact LRU order). With a
 * `sink` (the embedded node) every packed decision is also written to disk and `restore` reads them back at start;
 * a cluster node's sink marks the user for its write-behind (cluster/decision-write-behind.ts), and `packedOf`,
 * `packedFor` and `merge` carry a user's history to the partition's next owner (cluster/decision-handoff.ts).
 */
export class DecisionHistory {
  /** Each user's ring, for lookup; the order of writes is kept in the list below. */
  private readonly rings = new Map<string, Ring>();
  private total = 0;
  /** Every ring in a list from `lruHead` (least recently written) to `lruTail` (a classic LRU: a map for lookup, a list for order). */
  private lruHead?: Ring;
  private lruTail?: Ring;

  constructor(
    private readonly maxBytes = DEFAULT_DECISION_HISTORY_BYTES,
    private readonly perUser = DECISIONS_PER_USER,
    private readonly sink?: DecisionSink,
  ) {}

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
    if (ring !== undefined) this.total += ring.seal(force, this.sink);
  }

  /** Packs every open decision of every user (the node is stopping: what is still open is written as it stands). */
  sealAll(): void {
    for (let ring = this.lruHead; ring !== undefined; ring = ring.newer) this.total += ring.seal(true, this.sink);
  }

  /**
   * Every user's packed decisions, oldest first, users from the least recently written: what a snapshot of the
   * decision log holds (open decisions are left out; they reach the sink when packed).
   */
  *packedEntries(): Generator<[user: string, packed: string[]]> {
    for (let ring = this.lruHead; ring !== undefined; ring = ring.newer) {
      const packed = ring.packed();
      if (packed.length > 0) yield [ring.user, packed];
    }
  }

  /**
   * Puts back histories read from the decision log at start, before any decision is added: per user the packed
   * decisions in any order (sorted here by their `at`, stably, and only the newest `perUser` kept; a string that is
   * no packed decision is skipped), users ordered by their newest decision, so the LRU bound drops the quietest
   * first. Users already holding a history keep it.
   */
  restore(histories: Iterable<[user: string, packed: string[]]>): void {
    const users: { user: string; packed: string[]; newest: number }[] = [];
    for (const [user, packed] of histories) {
      if (this.rings.has(user)) continue;
      const sorted = byAt(packed);
      if (sorted.length === 0) continue;
      users.push({ user, packed: sorted, newest: packedAt(sorted[sorted.length - 1]) });
    }
    users.sort((a, b) => a.newest - b.newest);
    for (const { user, packed } of users) {
      const ring = new Ring(user);
      this.total += ring.bytes + ring.fill(packed, this.perUser);
      this.rings.set(user, ring);
      this.append(ring);
      this.enforce(user);
    }
  }

  /** Newest first, at most `limit`, as fresh objects (later outcome updates never race a reply being encoded). */
  newest(user: string, limit: number): Decision[] {
    return this.rings.get(user)?.newest(limit) ?? [];
  }

  /**
   * The packed decisions, oldest first, of every user matching `match`, their open ones packed first (cluster: a
   * partition handed off gracefully, its history saved for the next owner; see `merge`).
   */
  packedOf(match: (user: string) => boolean): [user: string, packed: string[]][] {
    const out: [string, string[]][] = [];
    for (let ring = this.lruHead; ring !== undefined; ring = ring.newer) {
      if (!match(ring.user)) continue;
      this.total += ring.seal(true, this.sink);
      const packed = ring.packed();
      if (packed.length > 0) out.push([ring.user, packed]);
    }
    return out;
  }

  /**
   * The user's packed decisions, oldest first, open ones left out (cluster: written behind, see
   * cluster/decision-write-behind.ts); empty with no history.
   */
  packedFor(user: string): string[] {
    return this.rings.get(user)?.packed() ?? [];
  }

  /** Whether `markSaved` ran for the user's current history (false with none). */
  saved(user: string): boolean {
    return this.rings.get(user)?.saved === true;
  }

  /** The user's current history was written behind (cluster/decision-write-behind.ts); no-op without one. */
  markSaved(user: string): void {
    const ring = this.rings.get(user);
    if (ring !== undefined) ring.saved = true;
  }

  /** The users matching `match` that have a history here, least recently written first. */
  usersOf(match: (user: string) => boolean): string[] {
    const out: string[] = [];
    for (let ring = this.lruHead; ring !== undefined; ring = ring.newer) if (match(ring.user)) out.push(ring.user);
    return out;
  }

  /**
   * Adds decisions taken elsewhere before this node's (cluster: the previous owner's, saved at a handoff) in front of
   * the user's history: sorted by `at`, the ones already held left out, the newest `perUser` of both kept.
   */
  merge(user: string, older: readonly string[]): void {
    const ring = this.rings.get(user);
    if (ring === undefined) {
      this.restore([[user, [...older]]]);
      const made = this.rings.get(user);
      if (made !== undefined) made.merged = true;
      return;
    }
    ring.merged = true;
    const held = new Set(ring.entries.filter((e): e is string => typeof e === 'string'));
    const earlier = byAt(older.filter((s) => !held.has(s)));
    if (earlier.length === 0) return;
    this.total += ring.prepend(earlier, this.perUser);
    this.enforce(user);
  }

  /** Whether `merge` ran for the user's current history (false with no history: there is nothing to keep yet). */
  merged(user: string): boolean {
    return this.rings.get(user)?.merged === true;
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

/** Packed decisions sorted by their `at`, stably (ties keep their order); a string that is no packed decision is left out. */
function byAt(packed: readonly string[]): string[] {
  return packed.map((s, i) => ({ s, i, at: packedAt(s) }))
    .filter((e) => !Number.isNaN(e.at))
    .sort((a, b) => a.at - b.at || a.i - b.i)
    .map((e) => e.s);
}

function sizeOf(e: string | Decision): number {
  return typeof e === 'string' ? e.length + ENTRY_OVERHEAD : OPEN_ENTRY_BYTES;
}

function copy(d: Decision): Decision {
  return { ...d, targets: d.targets.map((t) => ({ ...t })) };
}
