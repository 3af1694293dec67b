/**
 * Time, passed in so timer logic runs in virtual time under vitest's fake timers (STYLE.md: pass the clock in).
 * The system clock uses the global timer functions at call time, so `vi.useFakeTimers()` takes effect.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
}

export type Timer = ReturnType<typeof setTimeout>;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};
