import type { Decision } from '../protocol/index.js';

/** Per-actor memory of past messages; lives only while the actor does (dropped at passivation). */

/** Last message ids routed to this user: a redelivered `route` is settled again instead of delivered twice. */
export class RecentIds {
  private readonly ids: string[] = [];
  private set?: Set<string>; // created with the first id
  private next = 0;

  constructor(private readonly capacity = 256) {}

  has(id: string): boolean {
    return this.set?.has(id) ?? false;
  }

  add(id: string): void {
    this.set ??= new Set();
    if (this.set.has(id)) return;
    if (this.ids.length < this.capacity) this.ids.push(id);
    else {
      this.set.delete(this.ids[this.next]);
      this.ids[this.next] = id;
      this.next = (this.next + 1) % this.capacity;
    }
    this.set.add(id);
  }
}

/** Last decisions for `GET /v1/users/{user}/decisions`; targets' outcomes are updated in place. */
export class DecisionLog {
  private readonly ring: Decision[] = [];

  constructor(private readonly capacity = 32) {}

  add(d: Decision): void {
    this.ring.push(d);
    if (this.ring.length > this.capacity) this.ring.shift();
  }

  /** Newest first, copied so later outcome updates do not race a reply being encoded. */
  newest(limit: number): Decision[] {
    const out: Decision[] = [];
    for (let i = this.ring.length - 1; i >= 0 && out.length < limit; i--) out.push(copyDecision(this.ring[i]));
    return out;
  }
}

export function copyDecision(d: Decision): Decision {
  return { ...d, targets: d.targets.map((t) => ({ ...t })) };
}
