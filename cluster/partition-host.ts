import { createInbox, type NatsConnection } from '@nats-io/transport-node';
import type { UserDirectory } from '../actors/directory.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { Fence } from '../bus/fence.js';
import type { Bus, Subscription } from '../bus/bus.js';
import { partitionOf, type Subjects } from '../bus/subjects.js';
import { encodeBusMessage, type OwnerMessage, type OwnerQuery } from '../protocol/index.js';
import type { Ingress } from '../store/types.js';

/** Longest wait for gateways to resend a partition's sessions before its new owner starts routing, ms. */
export const RESYNC_WAIT_MS = 1000;

export interface PartitionHostDeps {
  nc: NatsConnection;
  /** The plain NATS bus: owner subscriptions are taken on it (deliveries go out through the fenced one). */
  bus: Bus;
  subjects: Subjects;
  ingress: Ingress;
  directory: UserDirectory;
  /** How many gateways to expect answers from when asking them to resend sessions (the live members). */
  liveGateways(): number;
  metrics: Metrics;
  log: Logger;
  /** Longest wait for in-flight work of a partition being handed off, ms (SWITCHBOARD_SHUTDOWN_TIMEOUT_MS). */
  drainTimeoutMs: number;
  /**
   * SWITCHBOARD_ACK_TIMEOUT_MS: a partition handed off waits at most this long (and at most drainTimeoutMs) for its
   * deliveries to be acked or to time out, before their messages go to the next owner. Absent: it does not wait.
   */
  ackTimeoutMs?: number;
  /**
   * The read states written behind (cluster/jetstream-held-store.ts): flushed for a partition handed off, so its next
   * owner reads them; discarded for one whose lease was lost, so no late put overwrites the next owner's.
   */
  reads?: {
    flushReads(match: (user: string) => boolean): Promise<void>;
    discardReads(match: (user: string) => boolean): void;
  };
  /**
   * Saves the decision histories of partition `p` handed off (its users: `match`), for its next owner
   * (cluster/decision-handoff.ts); called while the lease is still held.
   */
  saveDecisions?: (p: number, match: (user: string) => boolean) => Promise<void>;
}

/**
 * What a node does when it gains or loses a user partition (the LeaseKeeper's callbacks): subscribe the user
 * directory to the partition's owner and query subjects, ask the gateways to resend its sessions, then consume its
 * ingress; on handoff, stop consuming, finish in-flight work and forget its users; on a lost lease, stop at once.
 */
export class PartitionHost {
  private readonly subs = new Map<number, Subscription[]>();

  constructor(private readonly deps: PartitionHostDeps) {}

  /** How many partitions are hosted now. */
  get size(): number {
    return this.subs.size;
  }

  /**
   * The lease of `p` was won with `fence`: start serving it. Rejects when its ingress consumer could not be set up
   * (JetStream not answering); the LeaseKeeper calls it again while the lease is held (cluster/lease-keeper.ts,
   * ACQUIRE_RETRY_MS), and that call keeps the subscriptions this one made: the owner's subjects stay answered
   * (sessions, presence, queries) while its consumer is retried.
   */
  async acquire(p: number, fence: Fence): Promise<void> {
    const { bus, subjects, directory, ingress, log } = this.deps;
    let tenure = this.subs.get(p); // a retry of this tenure (a loss or a handoff removes it)
    if (tenure === undefined) {
      tenure = [
        bus.subscribe(subjects.ownerPartition(p), (m) => directory.handle(m as OwnerMessage)),
        bus.serve(subjects.queryPartition(p), (q) => directory.answer(q as OwnerQuery)),
      ];
      this.subs.set(p, tenure);
    }
    // Presence first: gateways resend this partition's sessions, and only once they answered (or a short wait
    // passed) does routing start, so queued messages do not meet an empty presence table.
    const answered = await this.askGateways(p);
    log.debug({ partition: p, gateways: answered }, 'sessions resent by gateways');
    // Lost or handed off while waiting (a loaded node can lose a lease within a second of winning it): consuming
    // now would leave a consumer loop running for a partition another node owns, taking its messages. (A loss
    // during consume() itself is the ingress's to handle: its release() wins over a consumer being set up.)
    if (this.subs.get(p) !== tenure) return;
    await ingress.consume((msg) => directory.handle({ type: 'route', user: msg.to, msg }), p);
    this.deps.metrics.ownedPartitions.set(this.subs.size);
    log.info({ partition: p, revision: fence.revision }, 'partition acquired');
  }

  /**
   * Graceful handoff of `p` (rebalance or SIGTERM): stop consuming, finish in-flight work, forget its users. The
   * deliveries already sent are finished while the partition is still subscribed (their acks come to this node) and
   * its ingress still knows them (an ack settles the message in JetStream): released first, a message its client had
   * acked a moment later was sent again by the next owner, to the PC that had it or, had the PC's session moved, to the
   * phone. The wait ends when none is left or after min(ackTimeoutMs, drainTimeoutMs): by then each has been acked or
   * has timed out into its fallback; what is still unfinished goes to the next owner as before.
   */
  async release(p: number): Promise<void> {
    const { ingress, directory, ackTimeoutMs, drainTimeoutMs, log } = this.deps;
    const tenure = this.subs.get(p);
    if (ackTimeoutMs !== undefined && ingress.pause !== undefined) {
      ingress.pause(p);
      if (!(await directory.settled(this.inPartition(p), Math.min(ackTimeoutMs, drainTimeoutMs)))) {
        log.info({ partition: p }, 'handoff: deliveries still unfinished go to the next owner');
      }
      // Lost while its deliveries finished, and maybe won back since: the loss stopped this tenure, and a new one's
      // consumer and subscriptions are not this handoff's to stop (stopped, the partition stayed leased, unserved).
      if (this.subs.get(p) !== tenure) return;
    }
    await ingress.release(p);
    this.unsubscribe(p);
    await this.deps.directory.drain(this.deps.drainTimeoutMs);
    await this.deps.reads?.flushReads(this.inPartition(p));
    // Won back while this waited (lost meanwhile, then acquired again): its users are live here again.
    if (this.subs.has(p)) return;
    await this.deps.saveDecisions?.(p, this.inPartition(p));
    if (this.subs.has(p)) return;
    this.forget(p);
    this.deps.log.info({ partition: p }, 'partition handed off');
  }

  /** `p` was won from `from`, a node that let its lease lapse (a crash or a pause, not a handoff): counted for operators. */
  takenOver(p: number, from: string): void {
    this.deps.metrics.leaseTakeovers.inc();
    this.deps.log.warn({ partition: p, from }, 'partition taken over from a node whose lease lapsed'); // a crash or a pause: operators want to see it
  }

  /** The lease of `p` lapsed or was taken: stop acting for it now; its unacked messages go to the next owner. */
  lost(p: number): void {
    void this.deps.ingress.release(p);
    this.unsubscribe(p);
    this.deps.reads?.discardReads(this.inPartition(p));
    this.forget(p);
    this.deps.log.warn({ partition: p }, 'partition lease lost: stopped acting for it');
  }

  private unsubscribe(p: number): void {
    for (const s of this.subs.get(p) ?? []) s.unsubscribe();
    this.subs.delete(p);
  }

  private inPartition(p: number): (user: string) => boolean {
    const partitions = this.deps.subjects.partitions;
    return (u) => partitionOf(u, partitions) === p;
  }

  private forget(p: number): void {
    this.deps.directory.evict(this.inPartition(p));
    this.deps.metrics.ownedPartitions.set(this.subs.size);
  }

  /** Publishes a resync request every gateway answers; waits for the live gateways' answers or RESYNC_WAIT_MS. */
  private async askGateways(partition: number): Promise<number> {
    const { nc, subjects } = this.deps;
    const expected = this.deps.liveGateways();
    const inbox = createInbox();
    let got = 0;
    const sub = nc.subscribe(inbox, { max: expected });
    const timer = setTimeout(() => sub.unsubscribe(), RESYNC_WAIT_MS);
    nc.publish(subjects.resync, encodeBusMessage({ type: 'resync', partition, partitions: subjects.partitions }), { reply: inbox });
    for await (const _ of sub) got++;
    clearTimeout(timer);
    return got;
  }
}
