import { withoutKey } from '../base/young-tables.js';

/**
 * Flow control per client session (PROTOCOL.md section 2): at most `max` deliveries sent and not yet acked; further
 * ones wait in order and go out as acks (or timeouts) come in. Replays after a restart and held backlogs pass the same
 * window, so no burst can overrun a client. It lives in the user actor, not the gateway, so that the ack timeout
 * starts when a delivery is actually sent, a waiting delivery costs no bus traffic and no gateway memory, and the
 * window survives a gateway that is only a socket (cluster: the owner keeps it whichever gateway holds the socket).
 */
export class DeliveryWindows<T> {
  // Created on first use: most live actors never send a direct delivery.
  private table?: Map<string, { sent: number; queue: T[] }>;

  private get sessions(): Map<string, { sent: number; queue: T[] }> {
    return (this.table ??= new Map());
  }

  /** `max`: SWITCHBOARD_MAX_INFLIGHT, default 256. */
  constructor(private readonly max: number) {}

  /** True: send `item` now (it is counted as in flight); false: it waits in the session's queue. */
  admit(session: string, item: T): boolean {
    let w = this.sessions.get(session);
    if (w === undefined) this.sessions.set(session, (w = { sent: 0, queue: [] }));
    if (w.sent < this.max && w.queue.length === 0) {
      w.sent++;
      return true;
    }
    w.queue.push(item);
    return false;
  }

  /** A sent delivery of `session` was acked or timed out: returns the waiting items to send now (each counted). */
  release(session: string): T[] {
    const w = this.table?.get(session);
    if (w === undefined) return [];
    w.sent = Math.max(0, w.sent - 1);
    if (w.queue.length === 0) {
      if (w.sent === 0) this.forget(session);
      return []; // the common case (nothing waits): no queue to walk
    }
    const out: T[] = [];
    while (w.sent < this.max && w.queue.length > 0) {
      out.push(w.queue.shift()!);
      w.sent++;
    }
    if (w.sent === 0 && w.queue.length === 0) this.forget(session);
    return out;
  }

  /** A waiting item was cancelled (read elsewhere) before it was sent. */
  unqueue(session: string, item: T): void {
    const w = this.sessions.get(session);
    if (!w) return;
    const i = w.queue.indexOf(item);
    if (i >= 0) w.queue.splice(i, 1);
    if (w.sent === 0 && w.queue.length === 0) this.forget(session);
  }

  /** The session closed: forgets it and returns what still waited (never sent). */
  close(session: string): T[] {
    const w = this.table?.get(session);
    this.forget(session);
    return w?.queue ?? [];
  }

  /** An emptied table is dropped rather than shrunk (base/young-tables.ts: no old-space garbage per delivery). */
  private forget(session: string): void {
    if (this.table !== undefined) this.table = withoutKey(this.table, session);
  }

  /** Deliveries in flight for `session` (tests, metrics). */
  inFlight(session: string): number {
    return this.table?.get(session)?.sent ?? 0;
  }
}
