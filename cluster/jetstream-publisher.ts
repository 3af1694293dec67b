import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { within } from '../base/within.js';

/** What JetStream answered for one stored message (its PubAck). */
export interface PubAck {
  stream: string;
  /** Stream sequence of the stored message (of the first copy when `duplicate`). */
  seq: number;
  /** The `Nats-Msg-Id` was seen within the stream's duplicate window: nothing new was stored. */
  duplicate: boolean;
}

/**
 * A publish JetStream refused, did not answer in time, or that had no stream to go to. `code` is JetStream's
 * `err_code` when it gave one. `unknown`: the message went out and no answer came (no PubAck within the timeout, the
 * connection lost while waiting), so JetStream may have stored it all the same; otherwise it certainly did not.
 * `disconnected`: not sent, the connection being down (`JetStreamPublisher.whenConnected` waits for it).
 */
export class JetStreamPublishError extends Error {
  constructor(message: string, readonly code?: number, readonly unknown = false, readonly disconnected = false) {
    super(message);
    this.name = 'JetStreamPublishError';
  }
}

interface Pending {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  /** Date.now() past which the publish fails with a timeout. */
  deadline: number;
}

const decoder = new TextDecoder();

/**
 * A `Nats-Msg-Id` value sent as is: printable ASCII, no space at either end, not starting with `~`. ASCII only, so
 * every node maps an id alike whatever its Unicode tables (`\p{C}` holds the unassigned code points, which differ
 * between Node versions: the same id would get two values on two nodes, and a retry through the other would be stored twice).
 */
const PLAIN_MSG_ID = /^[!-}]([ -~]*[!-~])?$/;

/**
 * The `Nats-Msg-Id` header value for the id `msgId`, one-to-one: `msgId` itself when it survives a header as is,
 * else `~` and its UTF-8 in base64url. nats.js trims header values and refuses CR and LF (`MsgHdrsImpl.validHeaderValue`),
 * so sent raw, `"a "` deduplicated against `"a"` (the second answered duplicate and never delivered) and an id with a
 * line break could not be published. A plain value never starts with `~`, so the two kinds never meet.
 */
export function msgIdHeader(msgId: string): string {
  return PLAIN_MSG_ID.test(msgId) ? msgId : `~${Buffer.from(msgId, 'utf8').toString('base64url')}`;
}

/**
 * JetStream publishes, each answered by its own PubAck, on one reply subscription (issue 13). It does what
 * `js.publish()` of nats.js 3.4 does for a message (publish with a reply subject, wait for the PubAck, check it) minus
 * what made that cost ~10% of a cluster node at load: per publish nats.js creates a timer, a `Promise.race`, and on
 * success still rejects its internal deferred with a new `RequestError("cancelled")`, capturing a stack trace even
 * with `noAsyncTraces`. Here a publish is a map entry; one sweep timer fails those older than `timeoutMs`.
 *
 * Every message is checked on its own: a publish resolves only once JetStream answered that this message is stored
 * (or a duplicate), so the durability promise (stored before 202) holds message by message. nats-server 2.9 has no
 * atomic batch publish, so nothing here treats a group of messages as stored together.
 */
export class JetStreamPublisher {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  /** Publishes that went out and got no answer (timed out, or the connection was lost meanwhile), since the start. */
  unanswered = 0;
  /**
   * Set from a `disconnect` to the next `reconnect` of the connection (resolved true then, or false at `close`):
   * a publish made meanwhile would be dropped with nats.js's outbound buffer at a reconnect attempt, or sent once
   * reconnected, its fate unknown either way; it is refused unsent instead (certainly not stored).
   */
  private down?: { reconnected: Promise<boolean>; end: (up: boolean) => void };
  private sweeper?: ReturnType<typeof setInterval>;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  /** `timeoutMs`: how long a publish waits for its PubAck before it fails (JetStream may still have stored it). */
  constructor(private readonly nc: NatsConnection, private readonly timeoutMs: number) {
    const inbox = createInbox();
    this.prefix = `${inbox}.`;
    this.sub = nc.subscribe(`${inbox}.*`, { callback: (err, m) => (err ? this.failAll(err) : this.answer(m)) });
    nc.closed().then(() => this.failAll(new Error('connection closed')), () => undefined);
    void (async () => {
      for await (const s of nc.status()) {
        if (this.closed) break; // a closed publisher stops listening at the next status
        if (s.type === 'disconnect') this.down ??= downSince();
        else if (s.type === 'reconnect') this.up(true);
      }
    })().catch(() => undefined);
  }

  /**
   * Publishes `data` to a stream subject; resolves with the PubAck once stored. `msgId` (any string) sets `Nats-Msg-Id`
   * (dedupe), through `msgIdHeader`. `rollup` sets `Nats-Rollup: sub`: once stored, this message is the only one left
   * on its subject (the stream must allow rollups, as KV buckets do; JetStream's "Subject Rollup" header).
   */
  publish(subject: string, data: Uint8Array, msgId?: string, rollup = false): Promise<PubAck> {
    if (this.closed) return Promise.reject(new JetStreamPublishError('publisher closed'));
    if (this.down !== undefined) return Promise.reject(new JetStreamPublishError('not connected to NATS: not sent', undefined, false, true));
    const token = (this.next++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs });
      try {
        let h;
        if (msgId !== undefined) (h = headers()).set('Nats-Msg-Id', msgIdHeader(msgId));
        if (rollup) (h ??= headers()).set('Nats-Rollup', 'sub');
        this.nc.publish(subject, data, { reply: this.prefix + token, headers: h });
      } catch (e) {
        this.pending.delete(token);
        reject(e as Error);
        return;
      }
      // The sweep runs only while something waits: an idle node has no timer.
      this.sweeper ??= setInterval(() => this.sweep(), Math.min(250, Math.max(10, this.timeoutMs / 4)));
    });
  }

  /** Resolves true once the connection is up (at once if it is), false after `timeoutMs` without a reconnect or once `close` is called. */
  whenConnected(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.down === undefined) return Promise.resolve(true);
    return within(this.down.reconnected, timeoutMs, false);
  }

  /** The connection is back (`up`), or the publisher closed: whoever waits for it hears so. */
  private up(up: boolean): void {
    this.down?.end(up);
    this.down = undefined;
  }

  /** Publishes waiting for their PubAck. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Stops taking publishes, waits for those in flight to be answered or to time out, then stops listening. */
  async close(): Promise<void> {
    this.closed = true;
    this.up(false);
    if (this.pending.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.sub.unsubscribe();
  }

  private answer(m: Msg): void {
    const token = m.subject.slice(this.prefix.length);
    const p = this.pending.get(token);
    if (!p) return; // timed out already
    this.pending.delete(token);
    const ack = pubAckOf(m);
    if (ack instanceof Error) p.reject(ack);
    else p.resolve(ack);
    this.stopSweepIfIdle();
  }

  /** Fails the publishes past their deadline. Deadlines grow with insertion order (one timeout), so it stops at the first live one. */
  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(token);
      this.unanswered++;
      p.reject(new JetStreamPublishError(`no PubAck within ${this.timeoutMs} ms`, undefined, true));
    }
    this.stopSweepIfIdle();
  }

  /** The connection's reply subscription ended with the publishes in flight: whether they were stored is unknown. */
  private failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    this.unanswered += all.length;
    for (const p of all) p.reject(new JetStreamPublishError(`no PubAck: ${err.message}`, undefined, true));
    this.stopSweepIfIdle();
  }

  private stopSweepIfIdle(): void {
    if (this.pending.size > 0) return;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** The PubAck in a JetStream answer, or why there is none. */
function pubAckOf(m: Msg): PubAck | JetStreamPublishError {
  if (m.data.length === 0) {
    // No stream listens on the subject: the server answers with an empty 503 status message.
    const code = m.headers?.code;
    return new JetStreamPublishError(code === 503 ? 'no responders: no stream for this subject' : `empty answer (status ${code ?? '?'})`);
  }
  let r: { stream?: unknown; seq?: unknown; duplicate?: unknown; error?: { description?: string; err_code?: number; code?: number } };
  try {
    r = JSON.parse(decoder.decode(m.data));
  } catch {
    return new JetStreamPublishError('answer is not JSON');
  }
  if (r.error) return new JetStreamPublishError(r.error.description ?? `error ${r.error.code}`, r.error.err_code);
  if (typeof r.stream !== 'string' || typeof r.seq !== 'number') return new JetStreamPublishError('invalid PubAck');
  return { stream: r.stream, seq: r.seq, duplicate: r.duplicate === true };
}

/** The state of a connection gone down: `reconnected` settles through `end`. */
function downSince(): { reconnected: Promise<boolean>; end: (up: boolean) => void } {
  let end!: (up: boolean) => void;
  const reconnected = new Promise<boolean>((resolve) => (end = resolve));
  return { reconnected, end };
}
