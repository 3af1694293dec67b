import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { SwitchboardError, type ChatMessage } from '../protocol/index.js';
import type { AcceptResult } from '../store/types.js';
import { partitionOf } from '../bus/subjects.js';

const packr = new Packr({ useRecords: false });

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
}

/**
 * Durable ingress for the cluster (issue 4, part 4): messages go into a work-queue stream with one subject per
 * partition, deduplicated by message id (`Nats-Msg-Id`). The owner of a partition consumes it through a durable
 * consumer with explicit acks, acking only once the decision is carried out, so a crash means redelivery, not loss.
 */
export class JetStreamIngress {
  readonly stream: string;
  private readonly consumers = new Map<number, ConsumerMessages>();

  private constructor(private readonly js: JetStreamClient, private readonly jsm: JetStreamManager, private readonly opts: Required<JetStreamIngressOptions>) {
    this.stream = `${opts.prefix}_ingress`;
  }

  static async open(nc: NatsConnection, o: JetStreamIngressOptions): Promise<JetStreamIngress> {
    const opts: Required<JetStreamIngressOptions> = { replicas: 1, duplicateWindowMs: 120_000, ackWaitMs: 10_000, publishTimeoutMs: 5000, ...o };
    const jsm = await jetstreamManager(nc);
    const ingress = new JetStreamIngress(jetstream(nc, { timeout: opts.publishTimeoutMs }), jsm, opts);
    const config = {
      name: ingress.stream,
      subjects: [`${opts.prefix}.in.*`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      num_replicas: opts.replicas,
      duplicate_window: opts.duplicateWindowMs * 1_000_000,
    };
    try {
      await jsm.streams.add(config);
    } catch (e) {
      // Another node created it first (2.9 may say "subjects overlap" for that race): make ours match.
      if (!/already in use|exists|subjects overlap/i.test(String(e))) throw e;
      await jsm.streams.update(ingress.stream, config);
    }
    return ingress;
  }

  subject(partition: number): string {
    return `${this.opts.prefix}.in.${partition}`;
  }

  /** Resolves once JetStream stored the message (202), or it was a duplicate within the window (200). */
  async accept(msg: ChatMessage): Promise<AcceptResult> {
    try {
      const ack = await this.js.publish(this.subject(partitionOf(msg.to, this.opts.partitions)), packr.pack(msg), { msgID: msg.id });
      return ack.duplicate ? 'duplicate' : 'accepted';
    } catch (e) {
      throw new SwitchboardError('unavailable', `JetStream did not store the message: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Starts consuming one partition. `handler` gets each message and an `ack` to call once the decision is carried out.
   * Messages arrive in stream order; unacked ones are redelivered after `ackWaitMs` (to whoever consumes then).
   */
  async consume(partition: number, handler: (msg: ChatMessage, ack: () => void, redelivered: boolean) => void): Promise<void> {
    if (this.consumers.has(partition)) return;
    const name = `p${partition}`;
    const config = {
      durable_name: name,
      filter_subject: this.subject(partition),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: this.opts.ackWaitMs * 1_000_000,
      max_ack_pending: 20_000,
      num_replicas: 0,
    };
    // A consumer per tenure: deleting the last owner's consumer cancels the pull requests a paused or dead process
    // still holds and hands its unacked messages to us now instead of after ack_wait.
    try {
      await this.jsm.consumers.delete(this.stream, name);
    } catch (e) {
      if (!/not found/i.test(String(e))) throw e;
    }
    await this.jsm.consumers.add(this.stream, config);
    const consumer = await this.js.consumers.get(this.stream, name);
    const messages = await consumer.consume({
      max_messages: 2000,
      // Short pulls: after a server restart a stale pull request is replaced within seconds, not the default 30 s.
      expires: 5000,
      callback: (m: JsMsg) => {
        let msg: ChatMessage;
        try {
          msg = packr.unpack(m.data) as ChatMessage;
        } catch {
          m.term(); // not ours to route: never redeliver garbage forever
          return;
        }
        handler(msg, () => m.ack(), m.redelivered);
      },
    });
    this.consumers.set(partition, messages);
  }

  /** Stops consuming a partition (handoff or lost lease); its unacked messages go to the next owner. */
  async stop(partition: number): Promise<void> {
    const c = this.consumers.get(partition);
    if (!c) return;
    this.consumers.delete(partition);
    await c.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers.keys()].map((p) => this.stop(p)));
  }
}
