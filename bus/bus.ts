import type { BusMessage } from '../protocol/index.js';

/**
 * What carries messages between gateways and user actors. The embedded default is `MemoryBus`;
 * the cluster plugs in a NATS one. Only the start-up code chooses (see runtime/node.ts).
 *
 * Subjects are dot-separated tokens as in NATS; a subscription may end in `*` (one token) or `>` (the rest).
 */
export interface Bus {
  publish(subject: string, msg: BusMessage): void;
  subscribe(subject: string, handler: (msg: BusMessage) => void): Subscription;
  /** Request/reply; rejects with `SwitchboardError('unavailable')` when nobody answers in time. */
  request(subject: string, msg: BusMessage, timeoutMs: number): Promise<BusMessage>;
  /** Answers requests on `subject`. */
  serve(subject: string, handler: (msg: BusMessage) => Promise<BusMessage> | BusMessage): Subscription;
  close(): Promise<void>;
}

export interface Subscription {
  unsubscribe(): void;
}
