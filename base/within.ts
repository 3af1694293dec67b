/**
 * `work`'s value, or `fallback` once `ms` (milliseconds) passed first; an infinite `ms` waits for `work` alone. `work`
 * must not reject: it is not awaited past the wait. The timer is cleared either way, so nothing holds the process.
 * Used where a bounded wait then goes on without the answer (a handoff's save, a stop's vendor answers).
 */
export function within<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  if (!Number.isFinite(ms)) return work;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), Math.max(0, ms))));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
