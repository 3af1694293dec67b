import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Subscription } from '../bus/bus.js';
import { partitionOf } from '../bus/subjects.js';
import { StaleOwnerFilter } from '../bus/fence.js';
import type { Timer } from '../base/clock.js';
import type { BusMessage } from '../protocol/index.js';
import { ClientSession, type SessionDeps } from './client-session.js';
import { WriteCork } from './write-cork.js';

/**
 * The WebSocket sessions held by this gateway node, addressed by the owners through `subjects.gateway(node)`:
 * `deliver` sends a message frame, `close_session` closes one (4409 when a newer connection replaces it).
 */
export class SessionTable {
  private readonly sessions = new Map<string, ClientSession>();
  private subscription?: Subscription;
  private resyncSubscription?: Subscription;
  /** Cluster: deliveries from a replaced owner are dropped (bus/fence.ts). */
  private readonly fences = new StaleOwnerFilter();
  private heartbeatTimer?: Timer;
  private readonly cork = new WriteCork();

  constructor(private readonly deps: SessionDeps) {}

  get size(): number {
    return this.sessions.size;
  }

  start(): void {
    this.subscription ??= this.deps.bus.subscribe(this.deps.subjects.gateway(this.deps.nodeId), (msg) => this.onBusMessage(msg));
    // Answered after the sessions went out on the same connection, so the new owner has them before it routes.
    this.resyncSubscription ??= this.deps.bus.serve(this.deps.subjects.resync, (msg) => ({
      type: 'resynced', node: this.deps.nodeId, sessions: msg.type === 'resync' ? this.resync(msg.partition, msg.partitions) : 0,
    }));
    if (!this.heartbeatTimer) this.scheduleHeartbeat();
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.resyncSubscription?.unsubscribe();
    this.resyncSubscription = undefined;
    if (this.heartbeatTimer) this.deps.clock.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** `socket`: the connection under `ws`, whose writes are corked per turn (WriteCork). */
  open(ws: WebSocket, socket?: Writable): ClientSession {
    const session = new ClientSession(ws, this.deps, socket, this.cork);
    this.sessions.set(session.id, session);
    void session.closed.then(() => this.sessions.delete(session.id));
    return session;
  }

  /** Closes every session and resolves once all sockets are gone (terminated after the close grace). */
  /** Closes every session with `code` and `reason`; resolves with how many once all are closed. */
  async closeAll(code: number, reason: string): Promise<number> {
    const all = [...this.sessions.values()];
    for (const s of all) s.close(code, reason);
    await Promise.all(all.map((s) => s.closed));
    return all.length;
  }

  /**
   * Resends every session, with its last presence, to its owner; returns how many. The cluster calls it after the
   * bus reconnected: an owner that took a partition while this gateway was cut off got no answer to its resync
   * request and would otherwise not know these sessions (their users' messages would wait as held while the
   * clients are connected). Idempotent: an owner that knows a session keeps it as it is.
   */
  resendAll(): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (s.user === undefined) continue;
      s.resync();
      n++;
    }
    return n;
  }

  /** Resends every session of a partition to its new owner; returns how many. */
  private resync(partition: number, partitions: number): number {
    let n = 0;
    for (const s of this.sessions.values()) {
      if (s.user === undefined || partitionOf(s.user, partitions) !== partition) continue;
      s.resync();
      n++;
    }
    return n;
  }

  /** WebSocket pings at the heartbeat the clients are told; a socket silent for two rounds is cut off. */
  private scheduleHeartbeat(): void {
    this.heartbeatTimer = this.deps.clock.setTimeout(() => {
      for (const s of this.sessions.values()) s.heartbeat();
      this.scheduleHeartbeat();
    }, this.deps.config.clientHeartbeatMs);
  }

  private onBusMessage(msg: BusMessage): void {
    switch (msg.type) {
      case 'deliver':
        if (!this.fences.admits(msg.fence)) {
          this.deps.log.warn({ partition: msg.fence!.partition, revision: msg.fence!.revision }, 'delivery from a replaced owner dropped');
          return;
        }
        this.sessions.get(msg.sessionId)?.deliver(msg.frame);
        return;
      case 'frame':
        if (!this.fences.admits(msg.fence)) return;
        this.sessions.get(msg.sessionId)?.sendFrame(msg.frame);
        return;
      case 'close_session':
        this.sessions.get(msg.sessionId)?.close(msg.code, msg.reason);
        return;
      default:
        this.deps.log.warn({ type: msg.type }, 'unexpected message on the gateway subject');
    }
  }
}
