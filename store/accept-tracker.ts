import type { ChatMessage } from '../protocol/index.js';
import type { AcceptOutcome, AcceptResult, Ingress } from './types.js';

/**
 * An Ingress decorator that counts accepts still in flight, so a graceful stop can wait for every message already
 * being made durable (and about to be answered 202) before it routes what is left and closes the sessions.
 */
export class AcceptTracker implements Ingress {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly ingress: Ingress) {}

  consume(handler: (msg: ChatMessage) => void, partition?: number): Promise<void> {
    return this.ingress.consume(handler, partition);
  }

  release(partition?: number): Promise<void> {
    return this.ingress.release(partition);
  }

  done(id: string): void {
    this.ingress.done(id);
  }

  close(): Promise<void> {
    return this.ingress.close();
  }

  accept(msg: ChatMessage): Promise<AcceptResult> {
    const p = this.ingress.accept(msg);
    // One derived promise per accept (`catch` + `finally` made three and their microtasks).
    const untrack = (): void => void this.inFlight.delete(tracked);
    const tracked: Promise<void> = p.then(untrack, untrack);
    this.inFlight.add(tracked);
    return p;
  }

  /** One tracked promise for the whole batch (it never rejects). */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
    const p = this.ingress.acceptMany(msgs);
    const untrack = (): void => void this.inFlight.delete(tracked);
    const tracked: Promise<void> = p.then(untrack, untrack);
    this.inFlight.add(tracked);
    return p;
  }

  /** Resolves once every accept started so far has finished. */
  async settled(): Promise<void> {
    await Promise.all(this.inFlight);
  }
}
