import type { ChatMessage } from '../protocol/index.js';
import type { AcceptOutcome, AcceptResult, Ingress } from './types.js';

/**
 * An Ingress decorator that counts accepts still in flight, so a graceful stop can wait for every message already
 * being made durable (and about to be answered 202) before it routes what is left and closes the sessions.
 * A count and one shared callback, not a set of promises: every accept passes here, and the set's add and delete
 * (its table growing and shrinking with each burst) and a closure per accept were ~10% of the embedded node's
 * per-message allocations (issue 13).
 */
export class AcceptTracker implements Ingress {
  private inFlight = 0;
  private idle: (() => void)[] = [];
  private readonly finished = (): void => {
    if (--this.inFlight > 0) return;
    for (const wake of this.idle.splice(0)) wake();
  };

  constructor(private readonly ingress: Ingress) {}

  consume(handler: (msg: ChatMessage) => void, partition?: number): Promise<void> {
    return this.ingress.consume(handler, partition);
  }

  release(partition?: number): Promise<void> {
    return this.ingress.release(partition);
  }

  pause(partition: number): void {
    this.ingress.pause?.(partition);
  }

  done(id: string): void {
    this.ingress.done(id);
  }

  close(): Promise<void> {
    return this.ingress.close();
  }

  accept(msg: ChatMessage): Promise<AcceptResult> {
    return this.track(this.ingress.accept(msg));
  }

  /** The batch counts once (its promise never rejects). */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
    return this.track(this.ingress.acceptMany(msgs));
  }

  /** Counts `p` in flight until it settles; one derived promise (`catch` + `finally` made three and their microtasks). */
  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight++;
    p.then(this.finished, this.finished);
    return p;
  }

  /**
   * Resolves once no accept is in flight: every accept started so far finished (accepted, duplicate or failed), and
   * any started meanwhile too. Call it once new accepts have stopped (the gateway's `stopAccepting`), as the
   * graceful stop does; under a steady stream of accepts it would wait for a pause.
   */
  settled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}
