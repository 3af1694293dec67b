import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvEntry } from '@nats-io/kv';
import { systemClock, type Clock, type Timer } from '../base/clock.js';
import { assignPartitions } from './assignment.js';
import { planRound, type HeldLease } from './lease-plan.js';
import { isCasConflict, LEADER_CONFIRM_WAIT_MS, openBucket, openLeaderReads } from './jetstream-setup.js';
import { followWatch } from './lease-watch.js';
import { noLog, type ClusterLog } from './lease-log.js';
import { isFree, leaseKey, partitionOfKey, sinceAfter, toLeaseEntry, writeLease, type LeaseEntry, type LeaseValue } from './lease-value.js';
import type { MembershipView } from './membership.js';
import { subjectToken } from '../bus/subjects.js';
import type { Fence } from '../bus/fence.js';

export const DEFAULT_LEASE_MS = 2000;
export const DEFAULT_RENEW_MS = 500;
/** Shortest wait for a renewal's answer, ms (the wait is otherwise what is left of the local deadline). */
export const MIN_RENEW_TIMEOUT_MS = 250;
/**
 * Waits before the acquire handler of a held lease is called again after it rejected, ms: the first, doubled per
 * failure up to the last. A handler that rejects has not started serving the partition (its JetStream consumer was
 * not created: a nats-server restarting in a cluster); left so, the lease was renewed for as long as the node ran
 * while the partition's accepted messages stayed in the stream, never routed (seen in a chaos test).
 */
export const ACQUIRE_RETRY_MS = { first: 250, max: 4000 } as const;

/** Proof of ownership stamped on what the owner sends; the fencing rules live in bus/fence.ts. */
export type { Fence } from '../bus/fence.js';

export interface LeaseKeeperOptions {
  /** The leases bucket; or `nc` to create/open `bucket` at start(). */
  kv?: KV;
  /** The connection to open the bucket on when `kv` is not given. */
  nc?: NatsConnection;
  /** Bucket name when opened through `nc`; default `switchboard_leases` (see LeaseKeeper.bucketName). */
  bucket?: string;
  /** Bucket replicas when this node creates it; default 1. */
  replicas?: number;
  /** This node's id (SWITCHBOARD_NODE_ID); written as the lease owner. */
  nodeId: string;
  /** SWITCHBOARD_PARTITIONS; the same on every node. */
  partitions: number;
  /** Who is live; the keeper leaves it on stop(). Only nodes running a LeaseKeeper should be members. */
  membership: MembershipView;
  /** Default systemClock. */
  clock?: Clock;
  /** How long a written lease lasts; default 2000 ms. */
  leaseMs?: number;
  /** How often held leases are renewed and assignments acted on; default 500 ms. */
  renewMs?: number;
  /** Wait before re-reading a won lease to catch a double grant by nats-server 2.9; default 50 ms (0: read at once). */
  confirmWaitMs?: number;
  /** The holder stops trusting its lease this long before the expiry others see; default leaseMs / 10. */
  safetyMarginMs?: number;
  /** Default: no logging. */
  log?: ClusterLog;
  /** Who is told about this node's partitions (cluster/partition-host.ts); also settable with `host()`. */
  host?: PartitionHandler;
}

/**
 * The one way a LeaseKeeper tells what happens to this node's partitions (cluster/partition-host.ts implements it;
 * tests record with it).
 */
export interface PartitionHandler {
  /**
   * The lease was won: start serving p, stamping `fence`. A rejection means p is not served yet: it is called again
   * (ACQUIRE_RETRY_MS) for as long as this tenure holds the lease and is not being handed off, so it must be safe to
   * call again after it rejected part way; `settled()` is false meanwhile.
   */
  acquire?(p: number, fence: Fence): Promise<void> | void;
  /** Graceful handoff: stop taking work for p and finish what is in flight; the lease is released when this resolves. */
  release?(p: number): Promise<void> | void;
  /** After a graceful handoff: p is no longer held and its release is being written. */
  released?(p: number): void;
  /** The lease was lost without a handoff (expired locally or taken): stop acting for p at once. */
  lost?(p: number, reason: string): void;
  /** The lease was won from `from`, another node that let it lapse without releasing it (a takeover, not a handoff). */
  takenOver?(p: number, from: string): void;
}

/** One partition's lease as this node last saw it in the bucket (the dashboard's ownership view). */
export interface LeaseOwner {
  partition: number;
  /** Node id; '' when released or never taken. */
  owner: string;
  /** Tenure counter of the partition (+1 per acquisition). */
  epoch: number;
  /** Epoch ms, in the writer's clock; 0 when released. */
  expiresAt: number;
}

interface Held {
  fence: Fence;
  /** Latest revision, for the next compare-and-set. */
  revision: number;
  /** When the last successful write was sent. */
  sentAt: number;
  /** Local deadline: renewal sent + leaseMs - safetyMargin. */
  validUntil: number;
  inflight?: Promise<void>;
  /** The acquire handler's run, retries included: resolves once it succeeded or this tenure ended. */
  ready: Promise<void>;
  /** The acquire handler succeeded: the partition is served. */
  serving: boolean;
  /** Ends a wait between acquire handler retries at once (a handoff, a loss, a stop). */
  wake?: () => void;
  releasing: boolean;
}

type State = 'new' | 'running' | 'stopping' | 'stopped';

/**
 * Holds this node's share of the partition leases (issue 4). Every round (renewMs, or sooner when membership or a
 * lease changes) it renews what it holds by compare-and-set, hands off what the assignment moved elsewhere, and takes
 * what is assigned to it once free. All safety comes from the CAS on the lease revision plus the local deadline:
 * a holder stops acting `safetyMarginMs` before anyone else may take over, without asking the server.
 */
export class LeaseKeeper {
  readonly nodeId: string;
  private handler: PartitionHandler;
  private kv?: KV;
  /** Reads that go to the stream leader, to confirm a won lease (see confirmWon). */
  private leaderKv?: KV;
  private readonly partitions: number;
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private readonly renewMs: number;
  private readonly margin: number;
  private readonly log: ClusterLog;
  private readonly held = new Map<number, Held>();
  private readonly cache = new Map<number, LeaseEntry>();
  private readonly acquiring = new Set<number>();
  private state: State = 'new';
  private timer?: Timer;
  private kickTimer?: Timer;
  private watcher?: { stop(): void };
  private stopWaiters: (() => void)[] = [];
  private assignmentKey = '';
  private assignment: string[] | undefined;
  private readonly onMembership = () => this.kick();

  constructor(private readonly opts: LeaseKeeperOptions) {
    this.handler = opts.host ?? {};
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1) throw new RangeError('partitions must be a positive integer');
    this.nodeId = opts.nodeId;
    this.kv = opts.kv;
    this.partitions = opts.partitions;
    this.clock = opts.clock ?? systemClock;
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.renewMs = opts.renewMs ?? DEFAULT_RENEW_MS;
    this.margin = opts.safetyMarginMs ?? Math.floor(this.leaseMs / 10);
    this.log = opts.log ?? noLog;
    if (this.renewMs >= this.leaseMs - this.margin) throw new RangeError('renewMs must be well below leaseMs - safetyMarginMs');
  }

  private get bucketName(): string {
    return this.opts.bucket ?? LeaseKeeper.bucketName();
  }

  static bucketName(prefix = 'switchboard'): string {
    return `${subjectToken(prefix)}_leases`;
  }

  async start(): Promise<void> {
    if (this.state !== 'new' || this.watcher) throw new Error('LeaseKeeper already started');
    await this.watch();
    this.state = 'running';
    this.opts.membership.on('change', this.onMembership);
    this.kick();
  }

  /**
   * Watches the leases without ever taking one, for leaseOwners() on a node outside the assignment (gateway-only: its
   * dashboard showed every partition unowned). abandon() stops it.
   */
  async follow(): Promise<void> {
    if (this.state !== 'new' || this.watcher) throw new Error('LeaseKeeper already started');
    await this.watch();
  }

  private async watch(): Promise<void> {
    if (!this.kv) {
      if (!this.opts.nc) throw new Error('LeaseKeeper needs kv or nc');
      const opts = { history: 1, replicas: this.opts.replicas ?? 1 };
      this.kv = await openBucket(this.opts.nc, this.bucketName, opts, Math.max(1000, this.renewMs * 2));
    }
    const kv = this.kv;
    this.watcher = followWatch(() => kv.watch({ key: 'p.>' }), (e) => this.observe(e), {
      clock: this.clock, log: this.log, what: 'leases',
      // Our own renewals come back through the watch every renewMs while we hold anything.
      staleAfterMs: this.leaseMs, expectTraffic: () => this.held.size > 0,
    });
  }

  /** Sets who is told about this node's partitions; call before start(). */
  host(handler: PartitionHandler): void {
    this.handler = handler;
  }

  /** Partitions held now, including ones being handed off (still valid until released). */
  owned(): ReadonlySet<number> {
    return new Set([...this.held.keys()].filter((p) => this.isValid(p)));
  }

  /** Held and locally known valid: the caller checks this before acting for p. Never asks the server. */
  isValid(p: number): boolean {
    const h = this.held.get(p);
    return h !== undefined && this.clock.now() < h.validUntil;
  }

  /** The fence to stamp on work for p, only while isValid(p). */
  fence(p: number): Fence | undefined {
    return this.isValid(p) ? this.held.get(p)!.fence : undefined;
  }

  /** Every partition's lease as last seen through the bucket watch (and this node's own writes). */
  leaseOwners(): LeaseOwner[] {
    const out: LeaseOwner[] = [];
    for (let p = 0; p < this.partitions; p++) {
      const v = this.cache.get(p)?.value;
      out.push({ partition: p, owner: v?.owner ?? '', epoch: v?.epoch ?? 0, expiresAt: v?.expiresAt ?? 0 });
    }
    return out;
  }

  /** Owns exactly its assigned share, with no handoff in progress. */
  settled(): boolean {
    const target = this.target();
    if (this.state !== 'running' || !target) return false;
    let mine = 0;
    for (let p = 0; p < this.partitions; p++) {
      if (target[p] !== this.nodeId) continue;
      mine++;
      const h = this.held.get(p);
      if (!h || h.releasing || !h.serving || !this.isValid(p)) return false;
    }
    return mine === this.held.size;
  }

  /** Graceful: leaves membership, hands every held partition off (the handler's release, then the lease's) and stops. */
  async stop(): Promise<void> {
    if (this.state === 'new') this.state = 'stopped';
    if (this.state !== 'running') return;
    this.state = 'stopping';
    const done = new Promise<void>((resolve) => this.stopWaiters.push(resolve));
    try {
      await this.opts.membership.leave();
    } catch (err) {
      this.log.warn({ err }, 'leaving membership failed');
    }
    this.kick();
    this.checkStopped();
    await done;
    this.abandon();
  }

  /** Stops at once without releasing anything (a crash, or a fatal exit): the leases lapse after leaseMs. */
  abandon(): void {
    this.state = 'stopped';
    for (const h of this.held.values()) h.wake?.();
    this.opts.membership.off('change', this.onMembership);
    for (const t of [this.timer, this.kickTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.timer = this.kickTimer = undefined;
    this.watcher?.stop();
    this.watcher = undefined;
  }

  private get active(): boolean {
    return this.state === 'running' || this.state === 'stopping';
  }

  /** Runs a round soon, through the clock so a paused clock pauses us too. */
  private kick(): void {
    if (!this.active || this.kickTimer !== undefined) return;
    this.kickTimer = this.clock.setTimeout(() => {
      this.kickTimer = undefined;
      void this.tick();
    }, 0);
  }

  private schedule(delay: number): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.active) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, delay);
  }

  // A round never waits for the network: writes run in the background, at most one per partition at a time
  // (h.inflight, acquiring, releasing), so a slow or hung server cannot hold up the local deadline checks.
  private tick(): void {
    if (!this.active) return;
    let next = this.renewMs;
    try {
      next = this.round();
    } catch (err) {
      this.log.warn({ err }, 'lease round failed');
    } finally {
      this.schedule(next);
      this.checkStopped();
    }
  }

  /** One round: planned without I/O (cluster/lease-plan.ts), then carried out; returns the delay until the next. */
  private round(): number {
    const held = new Map<number, HeldLease>();
    for (const [p, h] of this.held) held.set(p, { validUntil: h.validUntil, sentAt: h.sentAt, renewing: h.inflight !== undefined, releasing: h.releasing });
    const plan = planRound({
      now: this.clock.now(), nodeId: this.nodeId, partitions: this.partitions, renewMs: this.renewMs,
      state: this.state === 'stopping' ? 'stopping' : 'running', target: this.target(), held, acquiring: this.acquiring, seen: this.cache,
    });
    // Fencing first and without I/O: a process that slept past its deadline stops acting before anything else.
    for (const p of plan.lose) this.lose(p, 'lease expired locally');
    if (!this.active) return this.renewMs;
    for (const p of plan.renew) void this.renew(p, this.held.get(p)!);
    for (const p of plan.handOff) void this.handOff(p, this.held.get(p)!);
    for (const p of plan.acquire) void this.acquire(p);
    return plan.nextMs;
  }

  private renew(p: number, h: Held): Promise<void> {
    const sentAt = this.clock.now();
    const value: LeaseValue = { owner: this.nodeId, expiresAt: sentAt + this.leaseMs, epoch: h.fence.epoch, since: h.fence.since };
    const run = (async () => {
      let confirmed = false;
      try {
        // Wait for the answer until the local deadline, not the bucket's 1 s API timeout (issue 13): on a saturated
        // machine renewals were answered after 1-1.3 s, still in time, and a timed-out renewal that the server did
        // store made the next compare-and-set fail as if the lease had been taken.
        const rev = await writeLease(this.kv!, p, value, h.revision, Math.max(MIN_RENEW_TIMEOUT_MS, h.validUntil - sentAt));
        h.revision = rev;
        h.sentAt = sentAt;
        this.note(p, { value, revision: rev });
        if (this.held.get(p) !== h) return;
        // A confirmation that arrives after our own deadline proves nothing: another node may already have taken
        // the lease, and nats-server 2.9 checks the expected revision before consensus (nats-server#4320), so two
        // racing writes can both "succeed". Only a renewal confirmed in time extends the lease.
        if (this.clock.now() >= h.validUntil) return this.lose(p, 'renewal confirmed after the local deadline');
        h.validUntil = Math.max(h.validUntil, sentAt + this.leaseMs - this.margin);
        confirmed = true;
      } catch (err) {
        if (this.held.get(p) !== h) return;
        if (isCasConflict(err)) await this.afterConflict(p, h);
        else this.log.warn({ err, partition: p }, 'lease renewal failed; retrying until the local deadline');
      } finally {
        h.inflight = undefined;
      }
      // A slow answer used up part of the lease already: renew again now, not at the next round (up to renewMs
      // later, and later still when the event loop is busy). Only after a success, so errors are not retried in a loop.
      if (confirmed && this.active && this.held.get(p) === h && this.clock.now() - h.sentAt >= this.renewMs / 2) void this.renew(p, h);
    })();
    h.inflight = run;
    return run;
  }

  /**
   * A renewal was refused. Either another node wrote the key (the lease is lost), or an earlier renewal of ours was
   * stored although its answer never came (a timeout): then the key holds our own value, same epoch, and its
   * revision is the one to renew from. No other node can have written in between: its write would carry its id.
   */
  private async afterConflict(p: number, h: Held): Promise<void> {
    let e: LeaseEntry | undefined;
    try {
      const got = await this.kv!.get(leaseKey(p));
      e = got ? toLeaseEntry(got) : undefined;
    } catch (err) {
      this.log.warn({ err, partition: p }, 'could not read a lease after a refused renewal');
    }
    if (this.held.get(p) !== h) return;
    if (e?.value?.owner === this.nodeId && e.value.epoch === h.fence.epoch && e.revision > h.revision) {
      h.revision = e.revision;
      this.note(p, e);
      return;
    }
    this.lose(p, 'renewal refused: the lease was taken');
  }

  private async acquire(p: number): Promise<void> {
    this.acquiring.add(p); // before the first await: the round that called us sees it
    try {
      let e = this.cache.get(p);
      if (!e) {
        const got = await this.kv!.get(leaseKey(p));
        e = got ? toLeaseEntry(got) : { value: null, revision: 0 };
        this.note(p, e);
      }
      const sentAt = this.clock.now();
      if (!isFree(e, sentAt) && e.value?.owner !== this.nodeId) return;
      if (this.state !== 'running' || this.target()?.[p] !== this.nodeId) return;
      const epoch = (e.value?.epoch ?? 0) + 1;
      const since = sinceAfter(e.value, epoch);
      const value: LeaseValue = { owner: this.nodeId, expiresAt: sentAt + this.leaseMs, epoch, since };
      const rev = await writeLease(this.kv!, p, value, e.value ? e.revision : 0);
      this.note(p, { value, revision: rev });
      // nats-server 2.9 checks the expected revision before consensus (nats-server#4320): two nodes racing for a
      // lease can both "win". Confirm on the stream leader, a moment later, that ours is the last write.
      if (!(await this.confirmWon(p, rev))) {
        this.cache.delete(p);
        this.log.warn({ partition: p, revision: rev }, 'lease granted twice by the server; yielding to the later write');
        return;
      }
      if (this.clock.now() >= sentAt + this.leaseMs - this.margin) return; // confirmed too late to be of use
      const fence: Fence = { revision: rev, epoch, since };
      const h: Held = { fence, revision: rev, sentAt, validUntil: sentAt + this.leaseMs - this.margin, ready: Promise.resolve(), serving: false, releasing: false };
      this.held.set(p, h);
      this.log.debug({ partition: p, revision: rev }, 'lease acquired');
      const from = e.value?.owner;
      if (from && from !== this.nodeId) this.handler.takenOver?.(p, from);
      if ((this.state as State) === 'stopping') this.kick(); // stop() began meanwhile: hand it straight back
      h.ready = this.serve(p, h);
    } catch (err) {
      // Our view was stale (another node won, or the watch lags): read the key afresh next round.
      if (isCasConflict(err)) {
        this.cache.delete(p);
        this.log.debug({ partition: p }, 'lease taken first by another node');
      } else this.log.warn({ err, partition: p }, 'lease acquisition failed');
    } finally {
      this.acquiring.delete(p);
      this.checkStopped();
    }
  }

  /**
   * Runs the acquire handler of tenure `h` until it succeeds, waiting ACQUIRE_RETRY_MS between tries, for as long as
   * `h` holds p, is not being handed off and the keeper runs. Never rejects.
   */
  private async serve(p: number, h: Held): Promise<void> {
    await Promise.resolve(); // the handler runs after acquire() returned, as before
    for (let attempt = 1; ; attempt++) {
      try {
        await this.handler.acquire?.(p, h.fence);
        h.serving = true;
        if (attempt > 1) this.log.info({ partition: p, attempt }, 'acquire handler succeeded after failing');
        return;
      } catch (err) {
        this.log.warn({ err, partition: p, attempt }, 'acquire handler failed; trying again while the lease is held');
      }
      if (!this.tenureGoesOn(p, h)) return;
      const wait = Math.min(ACQUIRE_RETRY_MS.first * 2 ** (attempt - 1), ACQUIRE_RETRY_MS.max);
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(() => done(), wait);
        const done = () => {
          this.clock.clearTimeout(timer);
          h.wake = undefined;
          resolve();
        };
        h.wake = done;
      });
      if (!this.tenureGoesOn(p, h)) return;
    }
  }

  private tenureGoesOn(p: number, h: Held): boolean {
    return this.held.get(p) === h && !h.releasing && this.state === 'running';
  }

  /** After CONFIRM_WAIT_MS, is `rev` still the last write of p's key, as the stream leader sees it? */
  private async confirmWon(p: number, rev: number): Promise<boolean> {
    const wait = this.opts.confirmWaitMs ?? LEADER_CONFIRM_WAIT_MS;
    if (wait > 0) await new Promise<void>((resolve) => this.clock.setTimeout(resolve, wait));
    try {
      if (this.opts.nc && !this.opts.kv) {
        this.leaderKv ??= await openLeaderReads(this.opts.nc, this.bucketName, Math.max(1000, this.renewMs * 2));
        return (await this.leaderKv.get(leaseKey(p)))?.revision === rev;
      }
      return (await this.kv!.get(leaseKey(p)))?.revision === rev;
    } catch (err) {
      this.log.warn({ err, partition: p }, 'could not confirm a won lease; not acting on it');
      return false;
    }
  }

  // Keeps renewing through the handler's release (it may take a while to drain), stops acting, then writes the release.
  private async handOff(p: number, h: Held): Promise<void> {
    h.releasing = true;
    h.wake?.(); // a wait to retry the acquire handler ends: nothing to serve any more
    try {
      await h.ready;
      await this.handler.release?.(p);
    } catch (err) {
      this.log.warn({ err, partition: p }, 'release handler failed; releasing anyway');
    }
    if (this.held.get(p) !== h) return; // lost while draining; already reported
    this.held.delete(p);
    try {
      this.handler.released?.(p);
    } catch (err) {
      this.log.warn({ err, partition: p }, 'released handler failed');
    }
    await h.inflight;
    try {
      const value: LeaseValue = { owner: '', expiresAt: 0, epoch: h.fence.epoch, since: h.fence.since };
      const rev = await writeLease(this.kv!, p, value, h.revision);
      this.note(p, { value, revision: rev });
      this.log.debug({ partition: p }, 'lease released');
    } catch (err) {
      this.log.debug({ err, partition: p }, 'release not written; the lease lapses instead');
    }
    this.checkStopped();
  }

  private lose(p: number, reason: string): void {
    const h = this.held.get(p);
    if (!h) return;
    this.held.delete(p);
    h.wake?.();
    this.log.warn({ partition: p, reason }, 'lease lost');
    try {
      this.handler.lost?.(p, reason);
    } catch (err) {
      this.log.warn({ err, partition: p }, 'lost handler failed');
    }
    this.checkStopped();
  }

  private observe(kvEntry: KvEntry): void {
    const p = partitionOfKey(kvEntry.key);
    if (p === undefined || p >= this.partitions) return;
    const e = toLeaseEntry(kvEntry);
    if (!this.note(p, e)) return;
    const h = this.held.get(p);
    if (h && e.revision > h.revision && e.value?.owner !== this.nodeId) this.lose(p, `lease taken by ${e.value?.owner || 'nobody'}`);
    else if (!h && this.state === 'running' && this.target()?.[p] === this.nodeId && isFree(e, this.clock.now())) this.kick();
  }

  /** Keeps the newest known state of a key; false when `e` is older. */
  private note(p: number, e: LeaseEntry): boolean {
    const known = this.cache.get(p);
    if (known && known.revision >= e.revision) return false;
    this.cache.set(p, e);
    return true;
  }

  /** The assignment for the current live set, or undefined while this node is not live itself. */
  private target(): string[] | undefined {
    const live = this.opts.membership.live();
    if (!live.includes(this.nodeId)) return undefined;
    const key = live.join('\n');
    if (key !== this.assignmentKey) {
      this.assignmentKey = key;
      this.assignment = assignPartitions(live, this.partitions);
    }
    return this.assignment;
  }

  private checkStopped(): void {
    if (this.state !== 'stopping' || this.held.size > 0 || this.acquiring.size > 0) return;
    const waiters = this.stopWaiters;
    this.stopWaiters = [];
    for (const w of waiters) w();
  }
}
