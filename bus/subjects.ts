/**
 * Subject names and user partitions, shared by every bus.
 * The partition function is FNV-1a 32-bit modulo the partition count: the same as nats-server's
 * `partition(n, ...)` subject mapping, so operators can map subjects server-side.
 */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  const bytes = Buffer.from(s, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function partitionOf(user: string, partitions: number): number {
  return fnv1a32(user) % partitions;
}

export class Subjects {
  /** Gateway subjects by node id: few nodes, one subject per delivery (issue 13: no regex per message). */
  private readonly gateways = new Map<string, string>();

  constructor(readonly prefix: string, readonly partitions: number) {}

  /** Gateway -> owner messages for a user's partition. */
  owner(user: string): string {
    return `${this.prefix}.p.${partitionOf(user, this.partitions)}`;
  }

  ownerPartition(p: number | '*'): string {
    return `${this.prefix}.p.${p}`;
  }

  /** Queries answered by the owner of a user's partition. */
  query(user: string): string {
    return `${this.prefix}.q.${partitionOf(user, this.partitions)}`;
  }

  queryPartition(p: number | '*'): string {
    return `${this.prefix}.q.${p}`;
  }

  /** Owner -> the gateway node holding a session. */
  gateway(node: string): string {
    let subject = this.gateways.get(node);
    if (subject === undefined) {
      if (this.gateways.size >= 1024) this.gateways.clear(); // node ids churning: stay bounded
      this.gateways.set(node, (subject = `${this.prefix}.gw.${subjectToken(node)}`));
    }
    return subject;
  }

  /** Broadcast to every gateway: resend the sessions of a partition to its new owner. */
  get resync(): string {
    return `${this.prefix}.resync`;
  }

  /** Chat servers' ingress (section 3). */
  get send(): string {
    return `${this.prefix}.send`;
  }

  /** Chat servers' batch ingress: `{"messages":[…]}` answered `{"results":[…]}` (section 3). */
  get sendBatch(): string {
    return `${this.prefix}.send.batch`;
  }

  get routedEvents(): string {
    return `${this.prefix}.events.routed`;
  }

  /** Every node answers with its `switchboard_*` metrics: the dashboard's cluster-wide figures (issue 12). */
  get dashboardMetrics(): string {
    return `${this.prefix}.dashboard.metrics`;
  }

  /** Section 3: every push token Switchboard removes, `{"user","device","os","reason"}`. */
  get tokenRemovedEvents(): string {
    return `${this.prefix}.events.token_removed`;
  }
}

/** A node id as one subject token: NATS tokens cannot hold `.`, `*`, `>` or white space. */
export function subjectToken(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_');
}
