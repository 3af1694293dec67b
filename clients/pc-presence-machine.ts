import type { InactiveReason, PcPresence } from './wire.js';

/**
 * Claim 4 on the PC as a pure function: what the platform says (time since the last input, screen locked,
 * machine suspended, client locked) and what was reported so far in; the presence to report now, if any, out.
 * No timers, no platform API: `PcPresenceReporter` feeds it, the table test in test/client-pc-presence.test.ts
 * names claim 4's three conditions.
 */

/** What the platform adapters and the app say right now. */
export interface PresenceSignals {
  /** Ms since the user's last keyboard or pointer input (Infinity = idle as far as the platform can tell). */
  idleMs: number;
  /** The OS lock screen shows (or the platform said the screen is locked). */
  screenLocked: boolean;
  /** The machine is going to sleep: nobody is there, reported as `screen_locked` at once. */
  suspended: boolean;
  /** The app's own lock screen shows (claim 4's "client locked"). */
  clientLocked: boolean;
}

export interface PresenceOptions {
  /** No input for this long = `idle`; from `welcome.idleAfterMs` (section 2, default 60000). */
  idleAfterMs: number;
  /**
   * Hysteresis: once inactive, input must be this recent to count as back (default 5000), so an idle time that
   * hovers around the threshold (polling, a stray mouse jitter long ago) does not flip the state back and forth.
   */
  resumeWithinMs: number;
  /**
   * While active, input is reported as `active` again at most once per this many ms (default 60000, as Mattermost
   * desktop's `statusUpdateThreshold`); a change of state is always reported at once.
   */
  activeReportEveryMs: number;
}

export const DEFAULT_PRESENCE_OPTIONS: Omit<PresenceOptions, 'idleAfterMs'> = { resumeWithinMs: 5000, activeReportEveryMs: 60_000 };

/** What was reported so far. */
export interface PresenceMemory {
  reported?: PcPresence;
  /** Epoch ms of the last `active` report (-Infinity before the first). */
  activeReportedAt: number;
}

export const INITIAL_PRESENCE_MEMORY: PresenceMemory = { reported: undefined, activeReportedAt: -Infinity };

export interface PresenceStep {
  memory: PresenceMemory;
  /** The frame to send now, or undefined. */
  report?: PcPresence;
}

/** The presence the signals call for; `wasActive` picks the threshold (hysteresis). Client lock wins, then screen lock. */
export function presenceFor(signals: PresenceSignals, wasActive: boolean, opts: PresenceOptions): PcPresence {
  const inactive = (reason: InactiveReason): PcPresence => ({ state: 'inactive', reason });
  if (signals.clientLocked) return inactive('client_locked');
  if (signals.screenLocked || signals.suspended) return inactive('screen_locked');
  const idle = wasActive ? signals.idleMs >= opts.idleAfterMs : signals.idleMs >= Math.min(opts.resumeWithinMs, opts.idleAfterMs);
  return idle ? inactive('idle') : { state: 'active' };
}

/** One step: the presence to report at `now` (epoch ms), given what was reported before. */
export function nextPresence(memory: PresenceMemory, signals: PresenceSignals, now: number, opts: PresenceOptions): PresenceStep {
  const { reported } = memory;
  // Nothing reported yet counts as active for the threshold: a fresh start with recent input is active at once.
  const wasActive = reported === undefined || reported.state === 'active';
  const want = presenceFor(signals, wasActive, opts);
  const changed = reported === undefined || reported.state !== want.state ||
    (want.state === 'inactive' && reported.state === 'inactive' && reported.reason !== want.reason);
  if (want.state === 'active') {
    const inputSinceReport = now - signals.idleMs > memory.activeReportedAt;
    if (changed || (inputSinceReport && now - memory.activeReportedAt >= opts.activeReportEveryMs)) {
      return { memory: { reported: want, activeReportedAt: now }, report: want };
    }
    return { memory };
  }
  return changed ? { memory: { ...memory, reported: want }, report: want } : { memory };
}
