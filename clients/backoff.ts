/** Reconnect delays: exponential with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"). */
export interface BackoffOptions {
  /** First delay's upper bound, ms. Default 500. */
  initialMs?: number;
  /** Largest delay, ms. Default 30000. */
  maxMs?: number;
  /** Smallest delay after a 4429 (rate limited) close, ms. Default 30000. */
  rateLimitedMs?: number;
}

export const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 30_000, rateLimitedMs: 30_000 } as const;

/**
 * Delay before reconnect attempt `attempt` (0-based): uniform in [0, min(max, initial * 2^attempt)], so many
 * clients dropped at once (a node restart) do not all come back in the same millisecond. `random` is in [0, 1).
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const max = opts.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const cap = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** A 4429 close: at least `rateLimitedMs`, plus jitter of up to the same again. */
export function rateLimitedDelay(opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const min = opts.rateLimitedMs ?? DEFAULT_BACKOFF.rateLimitedMs;
  return min + Math.floor(random() * min);
}
