import { AckPolicy, DeliverPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { SwitchboardError, type ChatMessage } from '../protocol/index.js';
import { acceptEach } from '../store/accept-each.js';
import type { AcceptOutcome, AcceptResult, Ingress } from '../store/types.js';
import { partitionOf } from '../bus/subjects.js';
import { ensureStream } from './jetstream-setup.js';
import { JetStreamPublishError, JetStreamPublisher } from './jetstream-publisher.js';
import { jsAck, PullLoop } from './jetstream-pull.js';

const packr = new Packr({ useRecords: false });

/** Pause before publishing again after a refusal that followed an unanswered publish, ms (see `accept`). */
const RETRY_PAUSE_MS = 250;

export interface JetStreamIngressOptions {
  prefix: string;
  partitions: number;
  /** Stream replicas (1 on a single server, 3 in a 3-server cluster). */
  replicas?: number;
  /** Dedupe window for `Nats-Msg-Id`, default 2 min. */
  duplicateWindowMs?: number;
  /** How long a delivered message may stay unacked before JetStream redelivers it, default 10 s. */
  ackWaitMs?: number;
  /** Timeout of one publish acknowledgement, default 5 s. */
  publishTimeoutMs?: number;
  /**
   * How long an accept keeps publishing again after a publish got no answer, ms: default four publish timeouts, at
   * most half the dedupe window (a copy sent again past the window would be stored twice). See `accept`.
   */
  acceptDeadlineMs?: number;
}

/** A message handed to the owner and not yet `done`: every delivery of it (redeliveries too) is acked together. */
interface Unacked {
  partition: number;
  /** The reply subject of each delivery (see jsAck). */
  deliveries: (string | undefined)[];
  /** Date.now() of the last delivery or `+WPI`: what JetStream's ack_wait counts from (give or take the socket). */
  since: number;
}

/**
 * Durable ingress for the cluster: messages go into a work-queue stream with one subject per partition,
 * deduplicated by message id (`Nats-Msg-Id`). The owner of a partition consumes it through a durable consumer with
 * explicit acks and acks a message only when the owner is `done` with it (a final outcome on every target), so an
 * owner crash at any point before that means redelivery to the next owner, not loss. While a message waits for
 * device acks or vendor answers, its deliveries are kept alive with `+WPI` (working) so JetStream does not
 * redeliver it after `ack_wait`.
 */
export class JetStreamIngress implements Ingress {
  readonly stream: string;
  private readonly consumers = new Map<number, PullLoop>();
  /** Partitions whose consumer is being created (see consume). */
  private readonly starting = new Map<number, symbol>();
  /** Partitions whose lost consumer is being added again (see recreate). */
  private readonly recreating = new Set<number>();
  private readonly unacked = new Map<string, Unacked>();
  private keepAlive?: ReturnType<typeof setInterval>;
  private closed = false;
  /** Set by `stopRetrying` (and `close`): an accept whose publish is left unanswered answers `outcome_unknown` at once. */
  private retriesOver = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly publisher: JetStreamPublisher,
    private readonly opts: Required<JetStreamIngressOptions>,
  ) {
    this.stream = ingressStream(opts.prefix);
  }

  static async open(nc: NatsConnection, o: JetStreamIngressOptions): Promise<JetStreamIngress> {
    const base = { replicas: 1, duplicateWindowMs: 120_000, ackWaitMs: 10_000, publishTimeoutMs: 5000, ...o };
    const opts: Required<JetStreamIngressOptions> = { ...base, acceptDeadlineMs: Math.min(o.acceptDeadlineMs ?? 4 * base.publishTimeoutMs, base.duplicateWindowMs / 2) };
    const jsm = await jetstreamManager(nc);
    const config = {
      name: ingressStream(opts.prefix),
      subjects: [`${opts.prefix}.in.*`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: opts.replicas,
      duplicate_window: opts.duplicateWindowMs * 1_000_000,
    };
    await ensureStream(jsm, config);
    // The publisher (a subscription and a status listener on `nc`) only once nothing can fail: start-up retries a
    // failed open, and each attempt left one behind.
    return new JetStreamIngress(nc, jsm, new JetStreamPublisher(nc, opts.publishTimeoutMs), opts);
  }

  subject(partition: number): string {
    return `${this.opts.prefix}.in.${partition}`;
  }

  /** Publishes of accepts that got no answer from JetStream (each was published again, see `accept`), since the start. */
  get unansweredPublishes(): number {
    return this.publisher.unanswered;
  }

  /**
   * Resolves once JetStream stored the message (202), or it was a duplicate within the window (200). Rejects with
   * `unavailable` (503) only when JetStream certainly did not store it (it refused, no stream took the subject, the
   * publish never left), as section 3's 503 promises "never delivered". A publish that went out and got no answer
   * (no PubAck within the publish timeout, the connection lost meanwhile) may have been stored: it is published again
   * with the same `Nats-Msg-Id`, which JetStream deduplicates, until an answer comes or `acceptDeadlineMs` passes;
   * then the outcome is still unknown and the answer is `outcome_unknown` (504, send again with the same id). After
   * such a retry a PubAck that says duplicate is most likely this accept's own first copy: accepted.
   */
  async accept(msg: ChatMessage): Promise<AcceptResult> {
    if (this.closed) throw new SwitchboardError('shutting_down', 'ingress is closed');
    const subject = this.subject(partitionOf(msg.to, this.opts.partitions));
    const data = packr.pack(msg);
    const deadline = Date.now() + this.opts.acceptDeadlineMs;
    let unanswered = 0;
    for (;;) {
      try {
        const ack = await this.publisher.publish(subject, data, msg.id);
        return ack.duplicate && unanswered === 0 ? 'duplicate' : 'accepted';
      } catch (e) {
        const err = e instanceof JetStreamPublishError ? e : undefined;
        if (!err?.unknown && unanswered === 0) throw new SwitchboardError('unavailable', `JetStream did not store the message: ${(e as Error).message}`, { cause: e });
        if (err?.unknown) unanswered++;
        const unknown = (): SwitchboardError => new SwitchboardError('outcome_unknown', `JetStream gave no answer to ${unanswered} publish${unanswered === 1 ? '' : 'es'} of it (last: ${(e as Error).message})`, { cause: e });
        const left = deadline - Date.now() - this.opts.publishTimeoutMs;
        if (this.retriesOver || left < 0) throw unknown();
        if (err?.disconnected) {
          // Cut off meanwhile: publish again once reconnected.
          if (!(await this.publisher.whenConnected(left))) throw unknown();
        } else if (!err?.unknown) {
          // Refused now (no stream leader yet after a reconnect, say), after an earlier copy that may be stored: try
          // again shortly, as long as the deadline allows.
          await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_PAUSE_MS, left)).unref());
        }
      }
    }
  }

  /**
   * A graceful stop is under way: accepts whose publish is left unanswered stop publishing again and answer
   * `outcome_unknown` (504) at their next failure, so the stop waits at most one publish timeout for them.
   */
  stopRetrying(): void {
    this.retriesOver = true;
  }

  /** One publish per message, all in flight together, each PubAck checked alone (nats-server 2.9 has no atomic batch). */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
    return acceptEach((msg) => this.accept(msg), msgs);
  }

  /** Consumes one partition, or every partition when `partition` is left out. */
  async consume(handler: (msg: ChatMessage) => void, partition?: number): Promise<void> {
    if (partition === undefined) {
      for (let p = 0; p < this.opts.partitions; p++) await this.consume(handler, p);
      return;
    }
    if (this.consumers.has(partition) || this.starting.has(partition)) return;
    // A release while the consumer is being set up wins: no loop is started for a partition let go meanwhile.
    const start = Symbol(`p${partition}`);
    this.starting.set(partition, start);
    try {
      await this.createConsumer(partition);
    } catch (e) {
      if (this.starting.get(partition) === start) this.starting.delete(partition);
      throw e;
    }
    if (this.starting.get(partition) !== start) return; // released meanwhile
    this.starting.delete(partition);
    const loop = new PullLoop(this.nc, { stream: this.stream, consumer: `p${partition}`, onMissing: () => this.recreate(partition) }, (m) => {
      let msg: ChatMessage;
      try {
        msg = packr.unpack(m.data) as ChatMessage;
      } catch {
        jsAck.term(this.nc, m.reply); // not ours to route: never redeliver garbage forever
        return;
      }
      const seq = streamSequenceOf(m.reply);
      if (seq !== undefined) (msg as { acceptSeq?: number }).acceptSeq = seq;
      const known = this.unacked.get(msg.id);
      if (known) known.deliveries.push(m.reply), (known.since = Date.now());
      else this.unacked.set(msg.id, { partition, deliveries: [m.reply], since: Date.now() });
      handler(msg);
    });
    this.consumers.set(partition, loop);
    this.keepAlive ??= setInterval(() => this.working(), Math.max(250, Math.floor(this.opts.ackWaitMs / 3)));
    this.keepAlive.unref();
  }

  /**
   * The durable consumer `p<partition>` of one owner's tenure. Its state is kept in memory (`mem_storage`), the
   * stream's messages on file: the consumer's state (delivered, acked) is worth nothing across tenures (each owner
   * makes its own, from the first message still in the work queue), and a file-stored one cost nats-server a file
   * rewrite (open, truncate, write, close) every 100 ms per consumer under load: ~550 a second for 64 partitions in
   * the cluster bench at max rate (strace), and memory-stored consumers cut nats-server's CPU per routed message by
   * 12-25% there (issue 13). What a restart of nats-server loses is the consumer itself: `recreate` adds it again
   * when its pulls go unanswered.
   */
  private consumerConfig(partition: number) {
    return {
      durable_name: `p${partition}`,
      filter_subject: this.subject(partition),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: this.opts.ackWaitMs * 1_000_000,
      max_ack_pending: 20_000,
      num_replicas: 0,
      mem_storage: true,
    };
  }

  /** A fresh durable consumer `p<partition>` for this tenure. */
  private async createConsumer(partition: number): Promise<void> {
    // A consumer per tenure: deleting the last owner's consumer cancels the pull requests a paused or dead process
    // still holds and hands its unacked messages to us now instead of after ack_wait.
    try {
      await this.jsm.consumers.delete(this.stream, `p${partition}`);
    } catch (e) {
      if (!/not found/i.test(String(e))) throw e;
    }
    await this.jsm.consumers.add(this.stream, this.consumerConfig(partition));
  }

  /**
   * The consumer of a partition we consume is gone without having been deleted (a restarted nats-server keeps no
   * memory-stored consumer): adds it again, without deleting anything (an add of an existing consumer with the same
   * config changes nothing), one attempt at a time; the pull loop's next pulls find it. It starts from the first
   * message still in the work queue, so what was in flight comes again and is acked with its first delivery.
   */
  private recreate(partition: number): void {
    if (this.closed || !this.consumers.has(partition) || this.recreating.has(partition)) return;
    this.recreating.add(partition);
    this.jsm.consumers.add(this.stream, this.consumerConfig(partition))
      .catch(() => undefined) // tried again at the next pull that finds it missing
      .finally(() => this.recreating.delete(partition));
  }

  done(id: string): void {
    const entry = this.unacked.get(id);
    if (!entry) return;
    this.unacked.delete(id);
    for (const reply of entry.deliveries) jsAck.ack(this.nc, reply);
  }

  /**
   * A handoff's first step (`Ingress.pause`): the partition's pull loop stops, so nothing new is handed out, while its
   * messages handed out stay known and `done` still acks them until `release`.
   */
  pause(partition: number): void {
    this.starting.delete(partition); // a consumer still being set up is not started
    this.consumers.get(partition)?.stop();
  }

  /** Stops consuming a partition (handoff or lost lease), or all; its unacked messages go to the next owner. */
  async release(partition?: number): Promise<void> {
    if (partition === undefined) {
      this.starting.clear();
      await Promise.all([...this.consumers.keys()].map((p) => this.release(p)));
      return;
    }
    this.starting.delete(partition);
    const c = this.consumers.get(partition);
    for (const [id, e] of this.unacked) if (e.partition === partition) this.unacked.delete(id);
    if (!c) return;
    this.consumers.delete(partition);
    c.stop();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.retriesOver = true;
    clearInterval(this.keepAlive);
    await this.publisher.close(); // pending accepts are answered (or time out) first
    await this.release();
  }

  /**
   * Tells JetStream that messages in flight for a while are being worked on, so `ack_wait` does not redeliver them.
   * Only those older than a sixth of ack_wait: at max rate most messages are done within a second, and a `+WPI`
   * for each of them every ack_wait/3 was a tenth as many publishes as there were messages (issue 13). Runs every
   * ack_wait/3, so a message gets its first `+WPI` at most ack_wait/2 after its delivery reached this node.
   */
  private working(): void {
    const now = Date.now();
    const due = now - this.opts.ackWaitMs / 6;
    for (const e of this.unacked.values()) {
      if (e.since > due) continue;
      jsAck.working(this.nc, e.deliveries[e.deliveries.length - 1]);
      e.since = now;
    }
  }
}

/**
 * The stream sequence in a JetStream delivery's reply (ack) subject, or undefined when it is none. Two forms (the
 * nats-server ack subject; nats.js `parseInfo` reads the same, but does not export it from its public module):
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>` (9 tokens), and with domain
 * and account hash `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.…` (11 or more).
 */
export function streamSequenceOf(reply: string | undefined): number | undefined {
  if (reply === undefined || !reply.startsWith('$JS.ACK.')) return undefined;
  const tokens = reply.split('.');
  const at = tokens.length === 9 ? 5 : tokens.length >= 11 ? 7 : -1;
  const seq = at < 0 ? NaN : Number(tokens[at]);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
}

/** The stream's name for a subject prefix. */
function ingressStream(prefix: string): string {
  return `${prefix}_ingress`;
}
