import type { ReadState } from '../store/types.js';

/**
 * Read-state puts in flight per node at most. Under normal load a put is answered in about a millisecond and this
 * never binds (16 in flight = thousands of puts a second); when nats-server or the node is saturated, answers take
 * 100s of ms, the users waiting for a slot pile up, and each of them then goes out once with all the deliveries
 * made meanwhile: the puts per message fall as the load rises instead of adding to it (issue 13, cluster bench at
 * max rate: 0.8 puts per routed message with one put in flight per user only, ~0.1-0.3 with this cap).
 */
export const READ_PUTS_IN_FLIGHT = 16;

interface Writer {
  /** The newest state given to save (the caller's own object: encoded when its put is sent). */
  latest: ReadState;
  /** Changed since its last put was sent. */
  dirty: boolean;
  inFlight: boolean;
  /** Durable saves waiting for the next put (their state or a newer one goes out with it). */
  waiting: { resolve(): void; reject(e: unknown): void }[];
}

/**
 * Coalesces the writes of per-user read states (the whole state each time, PROTOCOL.md section 4 read sync) for a
 * store that puts a user's state as one value (cluster/jetstream-held-store.ts). Per user at most one put is in
 * flight; what changes meanwhile only marks the user dirty, and the latest state goes out once that put is
 * answered. Across users at most `maxInFlight` puts are in flight; dirty users wait their turn in order, those with
 * a durable save first. So a burst of deliveries to one user (a held backlog replayed) is a few puts, and at
 * saturation the puts per message fall instead of competing with the messages.
 *
 * A durable save resolves once a put holding its state, or a newer one, is stored, and rejects with that put's
 * error; a non-durable one resolves at once and is lost only when the process stops before its put is stored.
 */
export class ReadStateWriter {
  private readonly writers = new Map<string, Writer>();
  /** Dirty users not in flight, in the order they became dirty; `urgent` have a durable save waiting. */
  private readonly queued = new Set<string>();
  private readonly urgent = new Set<string>();
  private inFlight = 0;
  private idle: (() => void)[] = [];
  /** Puts sent since construction (tests and benches: how well saves coalesce). */
  puts = 0;

  /** `put` stores one user's state; it must encode `state` before returning (the caller keeps changing that object). */
  constructor(
    private readonly put: (user: string, state: ReadState) => Promise<void>,
    private readonly maxInFlight = READ_PUTS_IN_FLIGHT,
  ) {}

  /** Records `state` as the user's newest; see the class comment for when it is stored and when this resolves. */
  save(user: string, state: ReadState, durable: boolean): Promise<void> {
    let w = this.writers.get(user);
    if (!w) this.writers.set(user, (w = { latest: state, dirty: true, inFlight: false, waiting: [] }));
    w.latest = state;
    w.dirty = true;
    const stored = durable ? new Promise<void>((resolve, reject) => w.waiting.push({ resolve, reject })) : Promise.resolve();
    if (!w.inFlight) this.enqueue(user, w);
    this.pump();
    return stored;
  }

  /** The newest state saved for `user` and not yet known stored; undefined when every save of the user was answered. */
  pending(user: string): ReadState | undefined {
    return this.writers.get(user)?.latest;
  }

  /** Resolves once every save made so far was answered (stored or failed). */
  settled(): Promise<void> {
    if (this.writers.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private enqueue(user: string, w: Writer): void {
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
    w.dirty = false;
    w.inFlight = true;
    this.inFlight++;
    this.puts++;
    let sent: Promise<void>;
    try {
      sent = this.put(user, w.latest);
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent.then(
      () => {
        for (const x of waiting) x.resolve();
      },
      (e: unknown) => {
        for (const x of waiting) x.reject(e);
      },
    ).finally(() => {
      w.inFlight = false;
      this.inFlight--;
      if (w.dirty) this.enqueue(user, w);
      else this.writers.delete(user);
      this.pump();
      if (this.writers.size > 0) return;
      const idle = this.idle;
      this.idle = [];
      for (const f of idle) f();
    });
  }
}

function first(s: Set<string>): string | undefined {
  for (const x of s) return x;
  return undefined;
}
