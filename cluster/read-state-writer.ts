import { systemClock, type Clock, type Timer } from '../base/clock.js';
import { idsInChange } from '../store/read-state.js';
import type { ReadChange, ReadState } from '../store/types.js';

/**
 * Read-state puts in flight per node at most. Under normal load a put is answered in about a millisecond and this
 * never binds (16 in flight = thousands of puts a second); when nats-server or the node is saturated, answers take
 * 100s of ms, the users waiting for a slot pile up, and each of them then goes out once with all the deliveries
 * made meanwhile: the puts per message fall as the load rises instead of adding to it (issue 13, cluster bench at
 * max rate: 0.8 puts per routed message with one put in flight per user only, ~0.1-0.3 with this cap).
 */
export const READ_PUTS_IN_FLIGHT = 16;

/**
 * How long a user's unread marks (non-durable saves) wait before their put, ms: the user's later marks within it ride
 * along. A put carries the whole state (up to 1,500 ids), so one per mark was ~20% of a cluster node's CPU per routed
 * message at max rate (issue 13, bench/README.md "A fifth VM": 0.37 puts per message; nodes 115 against 91-93
 * µs/msg without them). A crash loses at most this much of the marks more than before (the badge undercounts those
 * messages; the messages themselves are not lost); the file store's lazy records wait up to 200 ms the same way
 * (store/append-log.ts LAZY_FLUSH_MS). Reads (durable saves) never wait.
 */
export const READ_PUT_DELAY_MS = 250;

/**
 * Puts of changes (see `ReadStatePut`) in a row after a whole state, at most; the next put is whole again. The store
 * keeps a user's puts of changes as revisions of one key (cluster/jetstream-held-store.ts READS_HISTORY, 64), so all
 * of them since the last whole state stay there, with room for late puts of a node that lost the partition.
 */
export const MAX_CHANGE_PUTS = 32;

/**
 * One put of a user's read state (`state`: the caller's object, which it keeps changing: encode it before any await).
 * - `changes` undefined: the whole `state`, which replaces what the store had; the put resolves with the store's
 *   sequence for it (or undefined when the store has none: then every put of this user is whole). `clearBase`, when
 *   set, is the sequence of an earlier whole state that puts of changes were made on: the store may forget them.
 * - `changes` given: only what changed since the previous put of this writer was stored, in order, made on the whole
 *   state the store stored as `base`; `base`'s state plus every put of changes made on it, in order, is `state`.
 */
export type ReadStatePut = (put: { user: string; state: ReadState; changes?: readonly ReadChange[]; base?: number; clearBase?: number }) => Promise<number | void>;

export interface ReadStateWriterOptions {
  /** Default READ_PUTS_IN_FLIGHT. */
  maxInFlight?: number;
  /** Default READ_PUT_DELAY_MS; 0 puts every non-durable save as soon as the user has no put in flight. */
  delayMs?: number;
  /** Default the system clock (tests pass virtual time). */
  clock?: Clock;
}

interface Writer {
  /** The newest state given to save (the caller's own object: encoded when its put is sent). */
  latest: ReadState;
  /** Changed since its last put was sent. */
  dirty: boolean;
  inFlight: boolean;
  /** Durable saves waiting for the next put (their state or a newer one goes out with it). */
  waiting: { resolve(): void; reject(e: unknown): void }[];
  /** Waiting out READ_PUT_DELAY_MS in `delayed` (not yet queued). */
  delayedUntil?: number;
  /** Discarded while its put was in flight: its state is not this node's to serve (`pending`) or to put again. */
  discarded?: boolean;
  /** The changes saved since the last put was sent, in order; undefined once a save came without its change. */
  changes: ReadChange[] | undefined;
  /**
   * The store's sequence of the last whole state this writer stored and the puts of changes stored on it since (0
   * right after it); undefined when none was stored yet, a put failed, or the user was discarded: the next put is whole.
   */
  base?: { seq: number; changePuts: number };
}

/**
 * Coalesces the writes of per-user read states (PROTOCOL.md section 4 read sync) for a store that keeps a user's
 * state as a whole state followed by changes (cluster/jetstream-held-store.ts). Per user at most one put is in
 * flight; what changes meanwhile only marks the user dirty, and goes out once that put is answered.
 *
 * What a put carries (issue 13): a user's first put is the whole state; while the user stays busy, the next ones carry
 * only the changes saved since the previous put (a few ids, where the whole state of a user with 1,000 unread is ~12
 * KB: encoding it was ~6% of a cluster node's busy CPU at max rate in the cluster bench, and nats-server stored it
 * each time); once the user is quiet for `delayMs` after a put of changes, or after MAX_CHANGE_PUTS of them, or when
 * the changes hold more ids than the state, the whole state again, so few changes are kept and a load usually finds
 * none made on the last whole state. A put that fails, or a user discarded, makes the next one whole.
 *
 * Across users at most `maxInFlight` puts are in flight; dirty users wait their turn in order, those with a durable
 * save first. So a burst of deliveries to one user (a held backlog replayed) is a few puts, and at
 * saturation the puts per message fall instead of competing with the messages.
 *
 * A non-durable save (an unread mark) first waits `delayMs` (READ_PUT_DELAY_MS) for the user's next marks, then
 * queues like the rest. A durable save resolves once a put holding its state, or a newer one, is stored, and rejects
 * with that put's error; a non-durable one resolves at once and is lost only when the process stops before its put is
 * stored. `flush` sends what waits (a partition handed off, the node stopping); `discard` forgets it (a lease lost:
 * the next owner writes the user now, and a late put from here would overwrite its state with an older one).
 */
export class ReadStateWriter {
  private readonly writers = new Map<string, Writer>();
  /** Dirty users not in flight, in the order they became dirty; `urgent` have a durable save waiting. */
  private readonly queued = new Set<string>();
  private readonly urgent = new Set<string>();
  /**
   * Users waiting out the delay from `delayedHead` on, in the order they started it (the delay is the same for all:
   * also due order); entries before the head are done, and dropped once they are half the list.
   */
  private delayed: { user: string; until: number }[] = [];
  private delayedHead = 0;
  /** The matchers of the flushes under way: their users' puts are never delayed. */
  private readonly flushing: ((user: string) => boolean)[] = [];
  private timer?: Timer;
  private inFlight = 0;
  private idle: (() => void)[] = [];
  /** Called whenever a put is answered (flush waits on them). */
  private answered: (() => void)[] = [];
  private readonly maxInFlight: number;
  private readonly delayMs: number;
  private readonly clock: Clock;
  /** Puts sent since construction (tests and benches: how well saves coalesce). */
  puts = 0;
  /**
   * Whether this node may still write `user` (the cluster passes its lease fence, bus/fence.ts `mayAct`), asked when
   * a put is sent: a mark made after a partition moved (a mailbox load that finished late) is dropped, not put over
   * the next owner's state. Default: always.
   */
  mayWrite: (user: string) => boolean = () => true;

  /** `put` stores one put (see ReadStatePut); it must encode what it sends before returning (the caller keeps changing `state`). */
  constructor(private readonly put: ReadStatePut, options: ReadStateWriterOptions = {}) {
    this.maxInFlight = options.maxInFlight ?? READ_PUTS_IN_FLIGHT;
    this.delayMs = options.delayMs ?? READ_PUT_DELAY_MS;
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Records `state` as the user's newest, `change` being what made it so (left out: the next put is the whole state);
   * see the class comment for when it is stored and when this resolves.
   */
  save(user: string, state: ReadState, durable: boolean, change?: ReadChange): Promise<void> {
    let w = this.writers.get(user);
    if (!w) this.writers.set(user, (w = { latest: state, dirty: true, inFlight: false, waiting: [], changes: [] }));
    w.discarded = false;
    w.latest = state;
    w.dirty = true;
    // Changes past the state's own size would make a put larger than the whole state: put that instead.
    if (change === undefined || (w.changes !== undefined && w.changes.push(change) > state.unread.size + state.read.size)) w.changes = undefined;
    const stored = durable ? new Promise<void>((resolve, reject) => w.waiting.push({ resolve, reject })) : Promise.resolve();
    if (!w.inFlight) this.queueOrDelay(user, w);
    this.pump();
    return stored;
  }

  /**
   * Sends now what waits out the delay for the users matching `match` (all by default), and resolves once none of
   * them has a put waiting or in flight: their states are stored, or their puts failed.
   */
  async flush(match: (user: string) => boolean = () => true): Promise<void> {
    this.flushing.push(match);
    try {
      const delayed = this.delayed.slice(this.delayedHead);
      this.delayed = [];
      this.delayedHead = 0;
      for (const d of delayed) {
        const w = this.writers.get(d.user);
        if (w?.delayedUntil !== d.until) continue; // queued, sent or discarded since
        if (match(d.user)) this.enqueue(d.user, w);
        else this.delayed.push(d);
      }
      this.pump();
      // Re-checked whenever a put is answered or states are discarded; users answered meanwhile with new marks are
      // queued at once while this runs (`queueOrDelay`).
      while ([...this.writers.keys()].some(match)) await new Promise<void>((resolve) => this.answered.push(resolve));
    } finally {
      this.flushing.splice(this.flushing.indexOf(match), 1);
    }
  }

  /**
   * Forgets the waiting and queued states of the users matching `match` (their durable saves reject with `reason`);
   * a put already in flight is answered as it will be.
   */
  discard(match: (user: string) => boolean, reason: Error): void {
    for (const [user, w] of this.writers) {
      if (!match(user)) continue;
      for (const x of w.waiting.splice(0)) x.reject(reason);
      w.dirty = false;
      w.delayedUntil = undefined;
      this.queued.delete(user);
      this.urgent.delete(user);
      // Saved again later (the partition back here), it starts with a whole state: the store may hold another node's.
      w.changes = undefined;
      w.base = undefined;
      if (w.inFlight) w.discarded = true;
      else this.writers.delete(user);
    }
    this.delayed = this.delayed.slice(this.delayedHead).filter((d) => this.writers.get(d.user)?.delayedUntil === d.until);
    this.delayedHead = 0;
    for (const f of this.answered.splice(0)) f(); // a flush waiting on these users looks again
    this.wakeIdle();
  }

  /**
   * The newest state saved for `user` and not yet known stored; undefined when every save of the user was answered,
   * or it was discarded.
   */
  pending(user: string): ReadState | undefined {
    const w = this.writers.get(user);
    return w === undefined || w.discarded === true ? undefined : w.latest;
  }

  /** Resolves once every save made so far was answered (stored or failed). */
  settled(): Promise<void> {
    if (this.writers.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** A user with a durable save waiting, or with no delay configured, is queued now; one with marks only waits first. */
  private queueOrDelay(user: string, w: Writer): void {
    if (w.waiting.length > 0 || this.delayMs === 0 || this.flushing.some((match) => match(user))) return this.enqueue(user, w);
    if (w.delayedUntil !== undefined || this.queued.has(user) || this.urgent.has(user)) return;
    w.delayedUntil = this.clock.now() + this.delayMs;
    this.delayed.push({ user, until: w.delayedUntil });
    this.timer ??= this.clock.setTimeout(this.due, this.delayMs);
  }

  /** The timer: queues every user whose delay is over, and waits for the next one's. */
  private readonly due = (): void => {
    this.timer = undefined;
    const now = this.clock.now();
    let i = this.delayedHead;
    for (; i < this.delayed.length && this.delayed[i].until <= now; i++) {
      const { user, until } = this.delayed[i];
      const w = this.writers.get(user);
      if (w?.delayedUntil === until) this.enqueue(user, w); // else queued, sent or discarded meanwhile
    }
    this.delayedHead = i;
    if (i === this.delayed.length || i > this.delayed.length / 2) {
      this.delayed = this.delayed.slice(i);
      this.delayedHead = 0;
    }
    this.pump();
    const next = this.delayed[this.delayedHead];
    if (next !== undefined) this.timer = this.clock.setTimeout(this.due, Math.max(0, next.until - now));
  };

  private enqueue(user: string, w: Writer): void {
    w.delayedUntil = undefined;
    if (w.waiting.length > 0) {
      this.queued.delete(user);
      this.urgent.add(user);
    } else if (!this.urgent.has(user)) {
      this.queued.add(user);
    }
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight) {
      const user = first(this.urgent) ?? first(this.queued);
      if (user === undefined) return;
      this.urgent.delete(user);
      this.queued.delete(user);
      this.send(user, this.writers.get(user)!);
    }
  }

  private send(user: string, w: Writer): void {
    const waiting = w.waiting;
    w.waiting = [];
    if (!this.mayWrite(user)) {
      // No longer ours (a partition moved, a lease lost): the next owner writes this user now.
      const err = new Error(`read state of ${user} not stored: this node no longer owns the user's partition`);
      for (const x of waiting) x.reject(err);
      this.writers.delete(user);
      for (const f of this.answered.splice(0)) f();
      this.wakeIdle();
      return;
    }
    const changes = w.changes;
    const base = w.base;
    const asChanges = changes !== undefined && changes.length > 0 && base !== undefined && base.changePuts < MAX_CHANGE_PUTS && idsIn(changes) <= w.latest.unread.size + w.latest.read.size;
    w.changes = [];
    w.dirty = false;
    w.inFlight = true;
    this.inFlight++;
    this.puts++;
    let sent: Promise<number | void>;
    try {
      sent = this.put(asChanges ? { user, state: w.latest, changes, base: base.seq } : { user, state: w.latest, clearBase: base !== undefined && base.changePuts > 0 ? base.seq : undefined });
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      (seq) => {
        if (w.base === base) w.base = asChanges ? { seq: base.seq, changePuts: base.changePuts + 1 } : typeof seq === 'number' ? { seq, changePuts: 0 } : undefined;
        for (const x of waiting) x.resolve();
      },
      (e: unknown) => {
        w.base = undefined;
        for (const x of waiting) x.reject(e);
      },
    ).finally(() => {
      w.inFlight = false;
      this.inFlight--;
      // Quiet since a put of changes: the whole state follows when the delay passes with no new change (none with no
      // delay: there is no quiet to wait for, and a whole state after each put of changes would double the puts).
      if (asChanges && w.base !== undefined && !w.dirty && this.delayMs > 0) w.dirty = true;
      if (w.dirty && !w.discarded) this.queueOrDelay(user, w);
      else if (this.writers.get(user) === w) this.writers.delete(user);
      this.pump();
      for (const f of this.answered.splice(0)) f();
      this.wakeIdle();
    });
  }

  private wakeIdle(): void {
    if (this.writers.size > 0) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const f of this.idle.splice(0)) f();
  }
}

function idsIn(changes: readonly ReadChange[]): number {
  let n = 0;
  for (const c of changes) n += idsInChange(c);
  return n;
}

function first(s: Set<string>): string | undefined {
  for (const x of s) return x;
  return undefined;
}
