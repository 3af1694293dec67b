import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** Options of one PullLoop; times in ms. */
export interface PullLoopOptions {
  /** The stream and the durable pull consumer to read. */
  stream: string;
  consumer: string;
  /** Most messages one pull request asks for. Default PULL_BATCH. */
  batch?: number;
  /** How long the server keeps one pull request open. Default PULL_EXPIRES_MS. */
  expiresMs?: number;
  /** JetStream API prefix. Default `$JS.API`. */
  apiPrefix?: string;
  /**
   * Called when a pull request was never answered (an existing consumer answers every one: messages, or a 408 when
   * it expires) and nobody deleted the consumer while this loop read it (no `409 Consumer Deleted` came): the
   * consumer is gone, as a restarted nats-server loses a memory-stored one, or the answer was lost with a
   * reconnect. The owner may add it again; pulling goes on either way.
   */
  onMissing?: () => void;
}

/**
 * Messages one pull request asks for. Small on purpose (issue 13): what the server has handed out and the node has
 * not read yet waits in the node's socket, in front of everything else on that connection (acks, deliveries to
 * gateways, the answers to its own publishes), and libuv reads up to 2 MB of it per event-loop turn, which delayed
 * the lease timers by up to ~1 s at max rate. With 100, a node owning 21 partitions has at most a few thousand
 * messages in flight from JetStream; a request that fills is renewed at once, so a busy partition is not slowed.
 */
export const PULL_BATCH = 100;
/** How long a pull request stays open; a new one is sent every half of it, so one is always waiting. */
export const PULL_EXPIRES_MS = 1000;

const API = '$JS.API';
/** Ack bodies (JetStream's ack protocol). */
const ACK = new TextEncoder().encode('+ACK');
const WORKING = new TextEncoder().encode('+WPI');
const TERM = new TextEncoder().encode('+TERM');

/**
 * Acks, keeps alive and refuses one delivered message through its reply subject (`Msg.reply`). The subject alone is
 * enough, so a consumer keeping messages until they are done keeps that string, not the `Msg`: a `Msg`'s data is a
 * view of the whole socket read it came in, which stays in memory as long as one of its messages does.
 */
export const jsAck = {
  ack: (nc: NatsConnection, reply: string | undefined): void => void (reply && nc.publish(reply, ACK)),
  working: (nc: NatsConnection, reply: string | undefined): void => void (reply && nc.publish(reply, WORKING)),
  term: (nc: NatsConnection, reply: string | undefined): void => void (reply && nc.publish(reply, TERM)),
};

interface Request {
  /** Messages this request may still bring. */
  left: number;
  /** Date.now() when it was sent. */
  at: number;
}

/**
 * Reads a durable pull consumer with overlapping pull requests (issue 13). The nats.js `consume()` of 3.4 renews
 * a pull only when 25% of it was used or when it expired; with a large pull and a steady trickle per partition it
 * waited for the expiry, and the new pull reached the server only after the node had read the expiry notice from a
 * backed-up socket: seconds in which the partition's new messages stayed on the server (the max-rate tail of the
 * cluster bench). Here a pull goes out every `expiresMs / 2` whatever happened, and another at once when one fills,
 * so there is always an open request at the server. Each request has its own reply subject, on which its status
 * (408 expired, 409) comes; messages are counted against the oldest open request, the one the server fills first.
 * Requests not heard of for `expiresMs + 1 s` (lost over a reconnect, or no consumer to answer them: `onMissing`)
 * are forgotten.
 */
export class PullLoop {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly requests = new Map<string, Request>();
  private readonly batch: number;
  private readonly expiresMs: number;
  private readonly nextSubject: string;
  private readonly body: Uint8Array;
  private timer?: ReturnType<typeof setInterval>;
  private next = 0;
  private stopped = false;
  /** A `409 Consumer Deleted` came: another owner took the consumer away, so a missing consumer is not ours to recreate. */
  private deleted = false;
  private readonly onMissing?: () => void;

  /** Starts pulling at once; `onMessage` gets every delivered message (acked by the caller, see jsAck). */
  constructor(private readonly nc: NatsConnection, opts: PullLoopOptions, private readonly onMessage: (m: Msg) => void) {
    this.onMissing = opts.onMissing;
    this.batch = opts.batch ?? PULL_BATCH;
    this.expiresMs = opts.expiresMs ?? PULL_EXPIRES_MS;
    this.nextSubject = `${opts.apiPrefix ?? API}.CONSUMER.MSG.NEXT.${opts.stream}.${opts.consumer}`;
    this.body = new TextEncoder().encode(JSON.stringify({ batch: this.batch, expires: this.expiresMs * 1_000_000 }));
    const inbox = createInbox();
    this.prefix = `${inbox}.`;
    this.sub = nc.subscribe(`${inbox}.*`, { callback: (err, m) => void (err ?? this.take(m)) });
    this.timer = setInterval(() => this.tick(), this.expiresMs / 2);
    this.pull();
  }

  /** Pull requests open at the server, as far as this loop knows. */
  get open(): number {
    return this.requests.size;
  }

  /** Stops pulling. Requests still open expire at the server; what they bring meanwhile is dropped (redelivered after ack_wait, or at once to the next owner, who recreates the consumer). */
  stop(): void {
    if (this.stopped) return; // paused first, released after (cluster/jetstream-ingress.ts)
    this.stopped = true;
    clearInterval(this.timer);
    this.sub.unsubscribe();
    this.requests.clear();
  }

  private pull(): void {
    if (this.stopped || this.nc.isClosed()) return;
    const token = (this.next++).toString(36);
    this.requests.set(token, { left: this.batch, at: Date.now() });
    this.nc.publish(this.nextSubject, this.body, { reply: this.prefix + token });
  }

  private tick(): void {
    const stale = Date.now() - this.expiresMs - 1000;
    let unanswered = false;
    for (const [token, r] of this.requests) {
      if (r.at >= stale) continue;
      this.requests.delete(token);
      unanswered = true;
    }
    if (unanswered && !this.deleted) this.onMissing?.();
    this.pull();
  }

  private take(m: Msg): void {
    if (this.stopped) return;
    if (m.data.length === 0 && m.headers?.code) {
      // A status, sent to the request's own reply subject: 408 it expired, 409 it was cut short (consumer
      // deleted, leadership change, limits), 100 a heartbeat (never asked for). Either way it brings nothing more.
      const { code, description } = m.headers;
      if (code !== 100) this.requests.delete(m.subject.slice(this.prefix.length));
      if (code === 409 && /consumer deleted/i.test(description)) this.deleted = true;
      return;
    }
    // A message carries its stream subject, not the request's; the server fills waiting requests oldest first.
    for (const [token, r] of this.requests) {
      if (--r.left > 0) break;
      this.requests.delete(token);
      this.pull(); // the partition is busy: keep a request open without waiting for the next tick
      break;
    }
    this.onMessage(m);
  }
}
