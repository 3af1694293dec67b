/** A small typed event emitter (no Node `events`, so it runs in browsers and React Native as is). */
export class Emitter<Events extends { [K in keyof Events]: (arg: any) => void }> {
  private readonly listeners = new Map<keyof Events, Set<(arg: unknown) => void>>();

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (arg: unknown) => void);
    return () => set!.delete(listener as (arg: unknown) => void);
  }

  /** Calls every listener; one that throws does not stop the others (the error is rethrown asynchronously). */
  protected emit<K extends keyof Events>(event: K, arg: Parameters<Events[K]>[0]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        listener(arg);
      } catch (e) {
        queueMicrotask(() => { throw e; });
      }
    }
  }
}
