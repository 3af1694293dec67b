/** The last `capacity` message ids, oldest forgotten first: dedupe across reconnects with bounded memory. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  /** True when `id` is new (and now remembered); false for a repeat. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }
}
