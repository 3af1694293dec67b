import type { Clock } from '../base/clock.js';

/** Vendor attempts per push before it is reported failed (SWITCHBOARD_PUSH_MAX_ATTEMPTS). */
export const DEFAULT_MAX_ATTEMPTS = 5;

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface BreakerOptions {
  /** Consecutive retryable failures that open the breaker, default 5. */
  failureThreshold?: number;
  /** First open period, default 5 s; doubles on each failed probe up to `maxOpenMs`. */
  openMs?: number;
  /** Longest open period, default 2 min. */
  maxOpenMs?: number;
}

/**
 * Per-vendor circuit breaker: after `failureThreshold` consecutive failures it stops sending to a vendor that keeps
 * failing, lets one probe through after the open period (half-open), and closes again on its success.
 */
export class CircuitBreaker {
  private failures = 0;
  private stateValue: BreakerState = 'closed';
  private openUntil = 0;
  private openMs: number;
  private probing = false;
  private readonly threshold: number;
  private readonly baseOpenMs: number;
  private readonly maxOpenMs: number;

  constructor(private readonly clock: Clock, opts: BreakerOptions = {}, private readonly onChange?: (s: BreakerState) => void) {
    this.threshold = opts.failureThreshold ?? 5;
    this.baseOpenMs = this.openMs = opts.openMs ?? 5000;
    this.maxOpenMs = opts.maxOpenMs ?? 120_000;
  }

  get state(): BreakerState {
    return this.stateValue;
  }

  /** 0 when a send may go now; otherwise how long to wait before asking again. */
  admit(): number {
    if (this.stateValue === 'closed') return 0;
    const now = this.clock.now();
    if (this.stateValue === 'open') {
      if (now < this.openUntil) return this.openUntil - now;
      this.set('half_open');
    }
    if (this.probing) return Math.max(1, Math.min(this.openMs, 1000));
    this.probing = true;
    return 0;
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    this.openMs = this.baseOpenMs;
    if (this.stateValue !== 'closed') this.set('closed');
  }

  failure(): void {
    this.failures++;
    if (this.stateValue === 'half_open') {
      this.probing = false;
      this.openMs = Math.min(this.openMs * 2, this.maxOpenMs);
      this.open();
    } else if (this.stateValue === 'closed' && this.failures >= this.threshold) this.open();
  }

  private open(): void {
    this.openUntil = this.clock.now() + this.openMs;
    this.set('open');
  }

  private set(s: BreakerState): void {
    this.stateValue = s;
    this.onChange?.(s);
  }
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
export function backoffMs(attempt: number, random: () => number = Math.random, baseMs = 500, capMs = 60_000): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1)));
}
