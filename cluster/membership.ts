import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvEntry } from '@nats-io/kv';
import { systemClock, type Clock, type Timer } from '../base/clock.js';
import { subjectToken } from '../bus/subjects.js';
import { noLog, type ClusterLog } from './lease-log.js';
import { bucketKeys, isCasConflict, LEADER_CONFIRM_WAIT_MS, openBucket, openLeaderReads } from './jetstream-setup.js';
import { followWatch } from './lease-watch.js';

export const DEFAULT_BEAT_MS = 500;
export const DEFAULT_DEAD_AFTER_MS = 2000;
/**
 * A gateway whose heartbeat is this much older than our clock is gone for its sessions (`gatewayGone`), ms: far past
 * DEFAULT_DEAD_AFTER_MS, so a node that only hiccuped keeps them; one that comes back resends them itself (bus
 * reconnect, or `resumed` after a pause).
 */
export const DEFAULT_GATEWAY_GONE_AFTER_MS = 10_000;

/**
 * The sessions a gateway held up to `before` (its own clock's epoch ms, compared with a session's `openedAt`) are
 * gone: `Infinity` when the gateway stopped heartbeating for gatewayGoneAfterMs (a crash, a long pause), the new
 * process's start when another process took over its node id (a crash and a quick restart).
 */
export interface GatewayGone {
  node: string;
  before: number;
}

/** What a LeaseKeeper needs of membership; `Membership` is the KV one, tests may pass a fixed set. */
export interface MembershipView {
  /** Live node ids, sorted. */
  live(): readonly string[];
  on(event: 'change', listener: (live: readonly string[]) => void): unknown;
  off(event: 'change', listener: (live: readonly string[]) => void): unknown;
  /** Leaves the cluster gracefully: others stop counting this node at once. */
  leave(): Promise<void>;
}

export interface MembershipOptions {
  /** The nodes bucket, or `nc` to create/open `<prefix>_nodes` at start(). */
  kv?: KV;
  /** The connection to open the bucket on when `kv` is not given. */
  nc?: NatsConnection;
  /** Subject prefix the bucket is named after; default `switchboard`. */
  prefix?: string;
  /** Bucket replicas when this node creates it; default 1. */
  replicas?: number;
  /** This node's id (SWITCHBOARD_NODE_ID). */
  nodeId: string;
  /** Default systemClock. */
  clock?: Clock;
  /** How often this node writes its heartbeat; default 500 ms. */
  beatMs?: number;
  /** A node whose last heartbeat is older than this counts as dead; default 2000 ms. */
  deadAfterMs?: number;
  /** Default: no logging. */
  log?: ClusterLog;
  /**
   * How long after its first heartbeat's compare-and-set a start re-reads the key on the stream leader (see
   * `claimNodeId`). Default 50 ms with the bucket opened on `nc`; 0 with a `kv` passed in, read back as it is.
   */
  confirmWaitMs?: number;
  /** This node's SWITCHBOARD_ROLES, announced in its beat; default all three. Only routers are assigned partitions. */
  roles?: readonly string[];
  /** See DEFAULT_GATEWAY_GONE_AFTER_MS. */
  gatewayGoneAfterMs?: number;
  /**
   * This node's SWITCHBOARD_PARTITIONS, announced in its beat; start() refuses to join live nodes that announce another
   * count (PartitionsMismatchError). Unset: neither announced nor checked.
   */
  partitions?: number;
}

/**
 * Another live process heartbeats under this node id (SWITCHBOARD_NODE_ID). Two processes with one id would take
 * each other's leases in turn (an operator's review saw 84 and 63 acquisitions in 5 s and the node never ready), so
 * the second one is refused at start.
 */
export class NodeIdInUseError extends Error {
  /** Start-up does not retry it (cluster/startup.ts): waiting does not make the other process go away. */
  readonly permanent = true;

  constructor(readonly nodeId: string) {
    super(`node id ${nodeId} is in use by another live node (its heartbeats keep coming): give each node its own SWITCHBOARD_NODE_ID`);
    this.name = 'NodeIdInUseError';
  }
}

/**
 * The first beat lost its compare-and-set (or the leader's confirmation) CLAIM_TRIES times in a row: another process
 * is writing our node id's key right now, most likely one started under the same SWITCHBOARD_NODE_ID at the same
 * moment. Not permanent: start-up retries the start (cluster/startup.ts), and the retry either finds the other
 * process's beats (NodeIdInUseError) or, if it was a dead process's last write landing late, gets through.
 */
export class NodeIdContendedError extends Error {
  /** What start-up's retry warning says instead of its generic "JetStream not ready yet" (cluster/startup.ts). */
  readonly retryNote = 'node id contended: another process may be starting under the same SWITCHBOARD_NODE_ID; retrying';

  constructor(readonly nodeId: string, attempts: number, options?: { cause?: unknown }) {
    super(`node id ${nodeId}: another write to its key came in before ours was confirmed, ${attempts} times in a row`, options);
    this.name = 'NodeIdContendedError';
  }
}

/**
 * A live node announces another SWITCHBOARD_PARTITIONS than this one's. Nodes that disagree on the count put a user in
 * different partitions: messages the joining node accepted went to owners that do not route that user (answered 202,
 * not delivered while it ran) and its lease keys named other partitions, so it is refused at start.
 */
export class PartitionsMismatchError extends Error {
  /** Start-up does not retry it (cluster/startup.ts): the other nodes keep their count. */
  readonly permanent = true;

  constructor(readonly partitions: number, readonly node: string, readonly theirs: number) {
    super(`SWITCHBOARD_PARTITIONS is ${partitions} but live node ${node} uses ${theirs}: give every node the same value`);
    this.name = 'PartitionsMismatchError';
  }
}

interface Beat {
  node: string;
  at: number;
  /** The writing process, random per start: tells a live duplicate of our node id from our own beats. */
  instance?: string;
  /** When the writing process began beating, its clock's epoch ms: its sessions all opened after it. */
  startedAt?: number;
  /** Absent in beats of nodes that predate roles: all three. */
  roles?: string[];
  /** The node's SWITCHBOARD_PARTITIONS; absent in beats of nodes that predate it. */
  partitions?: number;
}

/**
 * Rounds of check-then-compare-and-set at start (`claimNodeId`). A conflict means another write to our key came in
 * between: a twin (refused by the next round's check) or a dead process's last write landing late (the next round
 * passes); a third conflict in a row is thrown as NodeIdContendedError, and start-up retries the start.
 */
const CLAIM_TRIES = 3;

const isRouter = (b: Beat): boolean => b.roles === undefined || b.roles.includes('router');
const isGateway = (b: Beat): boolean => b.roles === undefined || b.roles.includes('gateway');

/**
 * Node heartbeats in a KV bucket. Each node writes `{node, at}` under its own key every beatMs; a node is live
 * while its latest `at` is within deadAfterMs of our clock (so clocks must agree to well under deadAfterMs). The
 * bucket's max_age removes keys of nodes gone for good. Every node watches the bucket and emits `change` with the
 * new live set; staleness without any event is caught on each heartbeat tick.
 *
 * For the owners' session tables it also emits `gatewayGone` (see GatewayGone): a crashed gateway closes no session,
 * and its sessions stayed at their owners (a PC `active`, a phone online) until they went stale, or for good for a
 * phone; and `resumed` when this process's own beat comes after a gap past deadAfterMs (a pause): others may have
 * dropped its sessions meanwhile, so its gateway resends them.
 */
export class Membership extends EventEmitter<{ change: [live: readonly string[]]; gatewayGone: [gone: GatewayGone]; resumed: []; partitionsMismatch: [err: PartitionsMismatchError] }> implements MembershipView {
  readonly nodeId: string;
  private kv?: KV;
  /** The bucket read through the stream leader (start's node id check); `kv` itself when the caller passed it. */
  private leaderKv?: KV;
  private readonly clock: Clock;
  private readonly beatMs: number;
  private readonly deadAfterMs: number;
  private readonly log: ClusterLog;
  private readonly beats = new Map<string, Beat & { revision: number }>();
  private current: readonly string[] = [];
  private timer?: Timer;
  private staleTimer?: Timer;
  private watcher?: { stop(): void };
  private running = false;
  private readonly instance = randomBytes(6).toString('base64url');
  /** When a beat of another process under our node id was last logged (at most one line a minute). */
  private duplicateLoggedAt = -Infinity;
  /** When start() began beating (clock ms). */
  private startedAt = Infinity;
  /** Gateways already reported by `gatewayGone` as silent: once per silence. */
  private readonly goneReported = new Set<string>();
  /** When this process last wrote a beat, or tried to (clock ms): a gap past deadAfterMs is a pause (`resumed`). */
  private lastBeatAt?: number;
  /** `partitionsMismatch` was emitted: once per process. */
  private mismatched = false;

  constructor(private readonly opts: MembershipOptions) {
    super();
    this.nodeId = opts.nodeId;
    this.kv = opts.kv;
    this.clock = opts.clock ?? systemClock;
    this.beatMs = opts.beatMs ?? DEFAULT_BEAT_MS;
    this.deadAfterMs = opts.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS;
    this.log = opts.log ?? noLog;
  }

  /** The nodes bucket for a subject prefix: `<prefix>_nodes`, created if missing. */
  static bucketName(prefix = 'switchboard'): string {
    return `${subjectToken(prefix)}_nodes`;
  }

  /** Writes the first heartbeat and starts watching; live() fills as the watch delivers. */
  async start(): Promise<void> {
    if (this.running) return;
    if (!this.kv) {
      if (!this.opts.nc) throw new Error('Membership needs kv or nc');
      const opts = {
        history: 1,
        replicas: this.opts.replicas ?? 1,
        // Garbage collection only: live nodes rewrite their key every beatMs.
        ttl: Math.max(5000, this.deadAfterMs * 3),
      };
      this.kv = await openBucket(this.opts.nc, Membership.bucketName(this.opts.prefix), opts, Math.max(1000, this.beatMs * 2));
      this.leaderKv = await openLeaderReads(this.opts.nc, Membership.bucketName(this.opts.prefix), Math.max(1000, this.beatMs * 2));
    }
    await this.checkPartitions(this.leaderKv ?? this.kv);
    // Set before the first beat (claimNodeId writes it), so every beat of this process announces the same start:
    // nodes compare starts (checkBeatPartitions).
    this.startedAt = this.clock.now();
    try {
      await this.claimNodeId(this.kv);
    } catch (e) {
      this.startedAt = Infinity;
      throw e;
    }
    this.running = true;
    const kv = this.kv;
    this.watcher = followWatch(() => kv.watch(), (e) => this.observe(e), {
      clock: this.clock, log: this.log, what: 'membership',
      // Our own heartbeat comes back through the watch every beatMs.
      staleAfterMs: Math.max(this.deadAfterMs / 2, this.beatMs * 2),
    });
    await this.beat();
    this.schedule();
  }

  /**
   * Throws NodeIdInUseError when another process heartbeats under our node id, then writes our first beat by
   * compare-and-set. A fresh beat alone may be our own id's last one before a crash and a quick restart (kill -9,
   * then start at once), so it waits two beat periods and refuses only a beat stamped after the wait began: a live
   * process has written one by then, a dead one cannot have (its last write may still land: it is older). The first
   * beat goes in only if the key is still at the revision this check read, and counts only if, `confirmWaitMs` later,
   * the stream leader still has it as the key's last write: nats-server 2.9 checks the expected revision before
   * consensus (nats-server#4320), so two processes started at the same moment can both see their compare-and-set
   * succeed on a replicated bucket; the leader keeps one of them. The other goes round again, finds the winner's
   * fresh beat, and is refused once the winner's next beat comes. Reads go to the leader too (a lagging replica could
   * hide a live twin).
   */
  private async claimNodeId(kv: KV): Promise<void> {
    const key = nodeKey(this.nodeId);
    const reads = this.leaderKv ?? kv;
    for (let attempt = 1; ; attempt++) {
      let lost: unknown; // this round's compare-and-set conflict, if that is how it lost
      let seen = await reads.get(key);
      const beat = seen?.operation === 'PUT' ? parseBeat(seen) : undefined;
      const waitFrom = this.clock.now();
      if (beat !== undefined && beat.instance !== this.instance && waitFrom - beat.at < this.deadAfterMs) {
        await this.sleep(this.beatMs * 2);
        seen = await reads.get(key);
        const newer = seen?.operation === 'PUT' ? parseBeat(seen) : undefined;
        if (newer !== undefined && newer.instance !== this.instance && newer.at > waitFrom) throw new NodeIdInUseError(this.nodeId);
      }
      try {
        // previousSeq 0: the key must not exist (JetStream's expected last subject sequence).
        const revision = await kv.put(key, this.beatBytes(), { previousSeq: seen?.revision ?? 0 });
        const confirmWait = this.opts.confirmWaitMs ?? (this.leaderKv ? LEADER_CONFIRM_WAIT_MS : 0);
        if (confirmWait > 0) await this.sleep(confirmWait);
        if ((await reads.get(key))?.revision === revision) return;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        lost = err;
      }
      if (attempt >= CLAIM_TRIES) throw new NodeIdContendedError(this.nodeId, attempt, { cause: lost });
    }
  }

  /** Throws PartitionsMismatchError when a live node's beat announces another partition count than ours. */
  private async checkPartitions(kv: KV): Promise<void> {
    const ours = this.opts.partitions;
    if (ours === undefined) return;
    for (const key of await bucketKeys(kv, 'n.>')) {
      if (key === nodeKey(this.nodeId)) continue;
      const e = await kv.get(key);
      const b = e?.operation === 'PUT' ? parseBeat(e) : undefined;
      if (b === undefined || this.clock.now() - b.at >= this.deadAfterMs) continue;
      if (typeof b.partitions === 'number' && b.partitions !== ours) throw new PartitionsMismatchError(ours, b.node, b.partitions);
    }
  }

  /**
   * The check of `checkPartitions` once running, on every beat the watch brings: two nodes with different counts that
   * start together both pass the check at start (neither has beaten yet), then each sees the other's beat here. The
   * one that started later (at the same ms: the greater node id) emits `partitionsMismatch`, once, and its start-up
   * code stops it with exit 2 as at start; the other goes on. The other's `startedAt` is its own clock's, as `at` is.
   */
  private checkBeatPartitions(b: Beat): void {
    const ours = this.opts.partitions;
    if (ours === undefined || this.mismatched || b.node === this.nodeId || typeof b.partitions !== 'number' || b.partitions === ours) return;
    if (this.clock.now() - b.at >= this.deadAfterMs) return; // a dead node's count does not matter (as at start)
    const theirs = typeof b.startedAt === 'number' ? b.startedAt : -Infinity;
    if (theirs > this.startedAt || (theirs === this.startedAt && b.node > this.nodeId)) return; // it is the later one: it goes
    this.mismatched = true;
    this.emit('partitionsMismatch', new PartitionsMismatchError(ours, b.node, b.partitions));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.clock.setTimeout(resolve, ms));
  }

  /** The live nodes with the `router` role, sorted: the ones partitions are assigned to. */
  live(): readonly string[] {
    return this.current;
  }

  /** How many nodes are live, whatever their roles (each answers the dashboard's metrics gather). */
  liveNodes(): number {
    const now = this.clock.now();
    let n = 0;
    for (const b of this.beats.values()) if (now - b.at < this.deadAfterMs) n++;
    return n;
  }

  /** How many live nodes have the `gateway` role (each answers a partition's resync request). */
  liveGateways(): number {
    const now = this.clock.now();
    let n = 0;
    for (const b of this.beats.values()) if (now - b.at < this.deadAfterMs && isGateway(b)) n++;
    return n;
  }

  isLive(node: string): boolean {
    return this.current.includes(node);
  }

  /** Stops heartbeating and deletes this node's key so the others drop it at once. */
  async leave(): Promise<void> {
    const wasRunning = this.running;
    this.halt();
    if (wasRunning && this.kv) {
      try {
        await this.kv.delete(nodeKey(this.nodeId));
      } catch (err) {
        this.log.warn({ err }, 'membership leave failed; the key ages out');
      }
    }
  }

  /** Stops heartbeating and watching without leaving: the others notice after deadAfterMs. */
  halt(): void {
    this.running = false;
    for (const t of [this.timer, this.staleTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.timer = this.staleTimer = undefined;
    this.watcher?.stop();
    this.watcher = undefined;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = this.clock.setTimeout(() => {
      void this.beat().finally(() => this.schedule());
    }, this.beatMs);
  }

  /** Our heartbeat as of now. */
  private beatOf(): Beat {
    return { node: this.nodeId, at: this.clock.now(), instance: this.instance, startedAt: this.startedAt === Infinity ? this.clock.now() : this.startedAt, ...(this.opts.roles ? { roles: [...this.opts.roles] } : {}), ...(this.opts.partitions !== undefined ? { partitions: this.opts.partitions } : {}) };
  }

  private beatBytes(): Uint8Array {
    return encodeBeat(this.beatOf());
  }

  private async beat(): Promise<void> {
    if (!this.running || !this.kv) return;
    const beat = this.beatOf();
    if (this.lastBeatAt !== undefined && beat.at - this.lastBeatAt > this.deadAfterMs) this.emit('resumed');
    this.lastBeatAt = beat.at;
    try {
      const revision = await this.kv.put(nodeKey(this.nodeId), encodeBeat(beat));
      // Our own beat counts at once, even if the watch lags or is being reopened.
      const known = this.beats.get(this.nodeId);
      if (this.running && (!known || known.revision < revision)) this.beats.set(this.nodeId, { ...beat, revision });
    } catch (err) {
      this.log.warn({ err: String(err) }, 'heartbeat failed'); // the cause, not a stack: it repeats every beat of an outage
    }
    this.recompute();
  }

  /** Another process writes beats under our node id (started at the same moment, so neither refused the other). */
  private duplicateSeen(): void {
    const now = this.clock.now();
    if (now - this.duplicateLoggedAt < 60_000) return;
    this.duplicateLoggedAt = now;
    this.log.warn({ node: this.nodeId }, 'another process heartbeats under this node id: give each node its own SWITCHBOARD_NODE_ID');
  }

  private observe(e: KvEntry): void {
    if (!this.running) return;
    const prev = [...this.beats.entries()].find(([, b]) => nodeKey(b.node) === e.key);
    if (e.operation !== 'PUT') {
      if (prev) this.beats.delete(prev[0]);
    } else {
      try {
        const b = e.json<Beat>();
        // A beat of the process this one replaced (kill -9, restart) is older than our start: not a duplicate.
        if (b.node === this.nodeId && b.instance !== undefined && b.instance !== this.instance && b.at > this.startedAt) this.duplicateSeen();
        if (typeof b.node === 'string' && typeof b.at === 'number' && (b.roles === undefined || Array.isArray(b.roles))) {
          const known = this.beats.get(b.node);
          if (!known || known.revision < e.revision) {
            this.beats.set(b.node, { ...b, revision: e.revision });
            this.checkBeatPartitions(b);
            this.goneReported.delete(b.node); // heard again: a later silence is reported anew
            // Another process under a node id we knew (a crash and a restart): the sessions of the one before are gone.
            const replaced = known?.instance !== undefined && b.instance !== undefined && known.instance !== b.instance;
            if (replaced && b.node !== this.nodeId && typeof b.startedAt === 'number' && isGateway(b)) this.emit('gatewayGone', { node: b.node, before: b.startedAt });
          }
        }
      } catch (err) {
        this.log.warn({ err, key: e.key }, 'unreadable heartbeat ignored');
      }
    }
    this.recompute();
  }

  private recompute(): void {
    if (!this.running) return;
    const now = this.clock.now();
    const alive = [...this.beats.values()].filter((b) => now - b.at < this.deadAfterMs);
    const goneAfter = this.opts.gatewayGoneAfterMs ?? DEFAULT_GATEWAY_GONE_AFTER_MS;
    const silent = [...this.beats.values()].filter((b) => b.node !== this.nodeId && isGateway(b) && !this.goneReported.has(b.node));
    for (const b of silent) {
      if (now - b.at < goneAfter) continue;
      this.goneReported.add(b.node);
      this.emit('gatewayGone', { node: b.node, before: Infinity });
    }
    // Wake up the moment the next node goes stale (or a gateway's silence lasts long enough), not at the next event.
    const dues = [...alive.map((b) => b.at + this.deadAfterMs), ...silent.filter((b) => !this.goneReported.has(b.node)).map((b) => b.at + goneAfter)];
    if (this.staleTimer !== undefined) this.clock.clearTimeout(this.staleTimer);
    this.staleTimer = undefined;
    if (dues.length > 0) {
      const due = Math.min(...dues) - now;
      this.staleTimer = this.clock.setTimeout(() => {
        this.staleTimer = undefined;
        this.recompute();
      }, Math.max(1, due));
    }
    const live = alive.filter(isRouter).map((b) => b.node).sort();
    if (live.length === this.current.length && live.every((n, i) => n === this.current[i])) return;
    this.current = live;
    this.emit('change', live);
  }
}

/** A beat as stored under a node's key: JSON. */
function encodeBeat(b: Beat): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(b));
}

/** A PUT entry's beat, or undefined when it is not one. */
function parseBeat(e: KvEntry): Beat | undefined {
  try {
    const b = e.json<Beat>();
    return typeof b.node === 'string' && typeof b.at === 'number' ? b : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A node id as a KV key, one-to-one: letters, digits and `-` stay, every other UTF-16 code unit becomes `_xxxx`
 * (four hex digits), so `a.b` and `a_b` cannot collide.
 */
export function nodeKey(node: string): string {
  return 'n.' + node.replace(/[^A-Za-z0-9-]/g, (c) => '_' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}
