import type { BusMessage } from '../protocol/index.js';
import type { Bus, Subscription } from './bus.js';

/**
 * A Bus whose publishes made in one turn of the event loop leave together, at its end (`setImmediate`), in publish
 * order; subscriptions pass straight through. The cluster's gateways publish through it (issue 13): every client
 * frame (an ack, mostly) arrives in a socket read of its own and published one owner message, and nats.js writes
 * what was published by the end of each such read: one NATS socket write per acked delivery, ~75% of a cluster
 * node's NATS writes and ~20 µs each on the bench machine. Held to the end of the turn, they share one write.
 *
 * Order is kept against everything else the wrapped bus sends for us: a `request` sends what is held first, and so
 * does an answer of `serve` (a gateway answers a resync request after the sessions it resent). Messages must not be
 * changed after `publish` (bus messages never are). A publish that throws at the end of the turn (the connection
 * closed meanwhile) goes to `onError` instead of the caller.
 */
export class TurnBatchedBus implements Bus {
  private subjects: string[] = [];
  private messages: BusMessage[] = [];
  private readonly flushBound = (): void => this.flush();

  constructor(
    private readonly inner: Bus,
    private readonly onError: (err: unknown, subject: string) => void = () => {},
    /** Runs `flush` once the turn's other callbacks ran: `setImmediate` (tests pass their own). */
    private readonly atTurnEnd: (flush: () => void) => void = (flush) => void setImmediate(flush),
  ) {}

  publish(subject: string, msg: BusMessage): void {
    this.subjects.push(subject);
    if (this.messages.push(msg) === 1) this.atTurnEnd(this.flushBound);
  }

  /** Sends every held publish now (also run at the end of the turn). */
  flush(): void {
    if (this.messages.length === 0) return;
    const subjects = this.subjects;
    const messages = this.messages;
    this.subjects = [];
    this.messages = [];
    for (let i = 0; i < messages.length; i++) {
      try {
        this.inner.publish(subjects[i], messages[i]);
      } catch (err) {
        this.onError(err, subjects[i]);
      }
    }
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): Subscription {
    return this.inner.subscribe(subject, handler);
  }

  request(subject: string, msg: BusMessage, timeoutMs: number): Promise<BusMessage> {
    this.flush();
    return this.inner.request(subject, msg, timeoutMs);
  }

  serve(subject: string, handler: (msg: BusMessage) => Promise<BusMessage> | BusMessage): Subscription {
    return this.inner.serve(subject, (msg) => {
      let reply: Promise<BusMessage> | BusMessage;
      try {
        reply = handler(msg);
      } finally {
        if (!(reply! instanceof Promise)) this.flush();
      }
      if (!(reply instanceof Promise)) return reply;
      return reply.then(
        (r) => (this.flush(), r),
        (e: unknown) => {
          this.flush();
          throw e;
        },
      );
    });
  }

  async close(): Promise<void> {
    this.flush();
    await this.inner.close();
  }
}
