import type { ChatMessage } from '../protocol/index.js';
import type { AcceptResult } from './types.js';

/**
 * Counts accepts still in flight, so a graceful stop can wait for every message already being made durable (and
 * about to be answered 202) before it routes what is left and closes the sessions.
 */
export class AcceptTracker {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly ingress: { accept(msg: ChatMessage): Promise<AcceptResult> }) {}

  accept(msg: ChatMessage): Promise<AcceptResult> {
    const p = this.ingress.accept(msg);
    const tracked: Promise<unknown> = p.catch(() => undefined).finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
    return p;
  }

  /** Resolves once every accept started so far has finished. */
  async settled(): Promise<void> {
    await Promise.all(this.inFlight);
  }
}
