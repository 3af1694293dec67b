import type { Decision } from '../protocol/index.js';

/** Per-actor memory of past message ids; lives only while the actor does (dropped at passivation). Decisions: decision-history.ts. */

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

export function copyDecision(d: Decision): Decision {
  return { ...d, targets: d.targets.map((t) => ({ ...t })) };
}
