import type { NatsConnection, Subscription as NatsSubscription } from '@nats-io/transport-node';
import { SwitchboardError, decodeBusMessage, encodeBusMessage, type BusMessage } from '../protocol/index.js';
import type { Bus, Subscription } from '../bus/bus.js';

/**
 * The Bus on core NATS: MessagePack bodies, NATS subjects and wildcards as they are, request/reply with NATS'
 * own inbox. Ordering is per publisher and subject, as on the MemoryBus for a single node.
 */
export class NatsBus implements Bus {
  private readonly subs = new Set<NatsSubscription>();

  constructor(private readonly nc: NatsConnection, private readonly onError: (err: unknown, subject: string) => void = () => {}) {}

  publish(subject: string, msg: BusMessage): void {
    this.nc.publish(subject, encodeBusMessage(msg));
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void, queue?: string): Subscription {
    const sub = this.nc.subscribe(subject, {
      queue,
      callback: (err, m) => {
        if (err) return this.onError(err, subject);
        let decoded: BusMessage;
        try {
          decoded = decodeBusMessage(m.data);
        } catch (e) {
          return this.onError(e, subject);
        }
        handler(decoded);
      },
    });
    return this.track(sub);
  }

  async request(subject: string, msg: BusMessage, timeoutMs: number): Promise<BusMessage> {
    try {
      const reply = await this.nc.request(subject, encodeBusMessage(msg), { timeout: timeoutMs });
      return decodeBusMessage(reply.data);
    } catch (e) {
      throw new SwitchboardError('unavailable', `no answer on ${subject}: ${(e as Error).message}`, { cause: e });
    }
  }

  serve(subject: string, handler: (msg: BusMessage) => Promise<BusMessage> | BusMessage, queue?: string): Subscription {
    const sub = this.nc.subscribe(subject, {
      queue,
      callback: (err, m) => {
        if (err) return this.onError(err, subject);
        Promise.resolve()
          .then(() => handler(decodeBusMessage(m.data)))
          .then(
            (reply) => m.respond(encodeBusMessage(reply)),
            (e: unknown) => {
              const se = e instanceof SwitchboardError ? e : new SwitchboardError('internal', String(e), { cause: e });
              m.respond(encodeBusMessage({ type: 'error', code: se.code, message: se.message }));
            },
          );
      },
    });
    return this.track(sub);
  }

  async close(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    this.subs.clear();
  }

  private track(sub: NatsSubscription): Subscription {
    this.subs.add(sub);
    return {
      unsubscribe: () => {
        this.subs.delete(sub);
        sub.unsubscribe();
      },
    };
  }
}
