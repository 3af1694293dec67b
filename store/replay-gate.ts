import type { ChatMessage } from '../protocol/index.js';
import type { Clock, Timer } from '../base/clock.js';
import type { AcceptOutcome, AcceptResult, Ingress } from './types.js';

/**
 * Holds the messages replayed after a restart (accepted before this process started, never settled) for a grace
 * period, so that clients can reconnect first: routed at once they would find no session and go to a vendor push
 * or `undeliverable` although the phone is back a second later. New messages pass straight through.
 */
export class ReplayGate {
  private held: ChatMessage[] = [];
  private timer?: Timer;
  private open = false;

  constructor(private readonly startedAt: number, private readonly graceMs: number, private readonly clock: Clock, private readonly route: (msg: ChatMessage) => void) {}

  /** Starts the grace period; call once the listener is up. */
  start(): void {
    if (this.graceMs === 0 || this.held.length === 0) return this.release();
    this.timer = this.clock.setTimeout(() => this.release(), this.graceMs);
  }

  take(msg: ChatMessage): void {
    if (this.open || msg.acceptedAt >= this.startedAt) this.route(msg);
    else this.held.push(msg);
  }

  /** How many replayed messages wait for the grace period to end. */
  get holding(): number {
    return this.held.length;
  }

  /** Routes everything held now (end of grace, or shutdown: they are routed, or stay unsettled for the next start). */
  release(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.open = true;
    const held = this.held;
    this.held = [];
    for (const m of held) this.route(m);
  }

  /** Drops the timer without routing (stop): held messages stay unsettled and are replayed at the next start. */
  cancel(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * An Ingress decorator: what `consume` hands out passes through a ReplayGate, so messages accepted before this
 * process started wait `graceMs` (SWITCHBOARD_REPLAY_GRACE_MS) for clients to reconnect. Call `startGrace()` once
 * the listener is up, and `cancelGrace()` on stop (held replays stay unsettled for the next start).
 *
 * `isHeld(msg)`: true when the held store holds `msg` (section 4) durably. A message accepted before this process
 * started and held then was settled lazily (`FileInbox.done`); a settle lost to kill -9 hands it out again, and routed
 * it would reach the user twice, once from the held store's replay and once as this copy (past the actor's recent
 * ids when more than 256 were held). Such a copy is settled at once instead: the held store delivers it. The
 * embedded node also answers true for a message the user read (its settle lost the same way): it is not delivered.
 */
export class GatedIngress implements Ingress {
  private gate?: ReplayGate;

  constructor(
    private readonly inner: Ingress,
    private readonly startedAt: number,
    private readonly graceMs: number,
    private readonly clock: Clock,
    private readonly isHeld?: (msg: ChatMessage) => boolean,
  ) {}

  accept(msg: ChatMessage): Promise<AcceptResult> {
    return this.inner.accept(msg);
  }

  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
    return this.inner.acceptMany(msgs);
  }

  async consume(handler: (msg: ChatMessage) => void, partition?: number): Promise<void> {
    const gate = (this.gate = new ReplayGate(this.startedAt, this.graceMs, this.clock, handler));
    const isHeld = this.isHeld;
    await this.inner.consume((m) => {
      if (isHeld !== undefined && m.acceptedAt < this.startedAt && isHeld(m)) return this.inner.done(m.id);
      gate.take(m);
    }, partition);
  }

  /** Starts the reconnect grace; returns how many replayed messages wait for it. */
  startGrace(): number {
    const holding = this.gate?.holding ?? 0;
    this.gate?.start();
    return holding;
  }

  /** Drops the grace timer without routing what it holds (stop). */
  cancelGrace(): void {
    this.gate?.cancel();
  }

  release(partition?: number): Promise<void> {
    return this.inner.release(partition);
  }

  pause(partition: number): void {
    this.inner.pause?.(partition);
  }

  done(id: string): void {
    this.inner.done(id);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
