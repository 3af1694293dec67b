import {
  DEFAULT_PRESENCE_OPTIONS, INITIAL_PRESENCE_MEMORY, nextPresence, type PresenceMemory, type PresenceOptions, type PresenceSignals,
} from './pc-presence-machine.js';
import { ClientError, shownValue } from './close-codes.js';
import { DEFAULT_IDLE_AFTER_MS, type PcPresence, type PolicyFrame, type Welcome } from './wire.js';

export { DEFAULT_PRESENCE_OPTIONS, nextPresence, presenceFor } from './pc-presence-machine.js';
export type { PresenceMemory, PresenceOptions, PresenceSignals, PresenceStep } from './pc-presence-machine.js';

/**
 * PC presence (claim 4) on top of the client core: platform adapters report input, screen lock and suspend;
 * the app reports its own lock; the pure `nextPresence` decides; the client sends the result and resends it
 * after every reconnect. The idle threshold comes from `welcome.idleAfterMs` (PROTOCOL.md v1.1 section 2) and
 * changes with a `policy` frame (the user's policy changed while the session was open).
 */

/** A change a platform adapter saw. Fields left out are unchanged. */
export interface PresenceUpdate {
  /** Ms since the last input, as of now (adapters that can measure it: Electron, page input events). */
  idleMs?: number;
  /**
   * Idle or not, for platforms that apply the threshold themselves (IdleDetector): `false` counts as input just now,
   * for as long as it holds. Wins over `idleMs` in the same update; an update with `idleMs` and no `idle` ends it.
   */
  idle?: boolean;
  screenLocked?: boolean;
  suspended?: boolean;
}

/** One platform's source of claim 4's signals. Each is tested against a fake of its platform API. */
export interface PresenceAdapter {
  /**
   * `system`: the OS's input and lock state (IdleDetector, Electron powerMonitor, logind);
   * `page`: only input inside this page plus its visibility: a weaker signal (a user typing in another app is idle).
   */
  readonly signal: 'system' | 'page';
  /**
   * Starts reporting. Report only what the platform measured: starting is not input (an adapter that reported its own
   * start as input made an away user's PC `active` again on every threshold change). `opts.idleAfterMs`: the idle
   * threshold in ms (`welcome.idleAfterMs`, section 2).
   */
  start(update: (u: PresenceUpdate) => void, opts: { idleAfterMs: number }): void | Promise<void>;
  stop(): void;
  /**
   * The idle threshold changed (a `welcome` or `policy` frame with another `idleAfterMs`, in ms) while running: apply
   * it without reporting anything the platform did not see; the state stays as it is until real input or real idle
   * time says otherwise. Adapters that do not use the threshold implement it as a no-op. Without it, the reporter
   * calls `stop()` then `start()` with the new threshold, and `start()` must then report no input it did not see.
   */
  setIdleAfterMs?(idleAfterMs: number): void | Promise<void>;
}

/** What the reporter needs from the client core (`SwitchboardClient` fits). */
export interface PresenceSink {
  setPresence(presence: PcPresence): void;
  /** The current session's welcome, if one is open already (its `idleAfterMs` is used at start). */
  readonly welcome?: Welcome;
  on(event: 'welcome', listener: (welcome: Welcome) => void): () => void;
  /** A `policy` frame: the user's policy changed while the session was open. */
  on(event: 'policy', listener: (policy: PolicyFrame) => void): () => void;
}

export interface PcPresenceOptions extends Partial<Omit<PresenceOptions, 'idleAfterMs'>> {
  /** How often idle time is re-evaluated between adapter updates, ms. Default 1000. */
  tickMs?: number;
  /** Epoch ms clock. Default `Date.now`. */
  now?: () => number;
}

interface AdapterState {
  lastInputAt?: number;
  idle?: boolean;
  screenLocked: boolean;
  suspended: boolean;
}

/**
 * Reports a PC's presence (claim 4, PROTOCOL.md section 2 `presence` rows) through `sink.setPresence`: the adapters'
 * signals and the app's client lock, re-evaluated every `tickMs`, each change sent once and at once.
 */
export class PcPresenceReporter {
  private memory: PresenceMemory = INITIAL_PRESENCE_MEMORY;
  private clientLocked = false;
  private idleAfterMs = DEFAULT_IDLE_AFTER_MS;
  private startedAt = 0;
  private states: AdapterState[];
  /** Between `start()` and `stop()`: only then are signals evaluated and reported. */
  private active = false;
  /** The start under way or done, returned to a second `start()`; undefined when stopped. */
  private started?: Promise<void>;
  /** Bumped by every start and stop, so a start whose adapters finish starting after a `stop()` sets nothing up. */
  private run = 0;
  private tick?: ReturnType<typeof setInterval>;
  private offWelcome?: () => void;
  private offPolicy?: () => void;
  private readonly now: () => number;

  constructor(private readonly sink: PresenceSink, private readonly adapters: PresenceAdapter[], private readonly opts: PcPresenceOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.states = this.freshStates();
  }

  /** The presence last reported. */
  get presence(): PcPresence | undefined {
    return this.memory.reported;
  }

  /** True when every adapter is a page-level (weaker) signal. */
  get weakSignal(): boolean {
    return this.adapters.every((a) => a.signal === 'page');
  }

  /**
   * Starts the adapters and reporting: the presence the signals call for is reported at once, then re-evaluated every
   * `tickMs` ms and on every adapter update. Idle time before the first input an adapter reports counts from here.
   * Idempotent: called again while started (or still starting) it starts nothing more (no second timer, listener or
   * adapter start) and returns the first call's promise. After `stop()` it starts afresh: adapter signals from before
   * are forgotten and the presence is reported again; the client lock (`setClientLocked`) is kept.
   * @returns resolves once every adapter started; rejects with an adapter's start error (or the sink's
   *   `setPresence` error, e.g. `ClientError` `presence_not_allowed` from a client whose session is not a `pc`), and
   *   is then stopped, so `start()` may be called again.
   */
  start(): Promise<void> {
    this.started ??= this.begin();
    return this.started;
  }

  /**
   * Stops the adapters and reporting (no more timer, listener or `setPresence`); the client keeps (and re-sends
   * after a reconnect) the presence last reported. Does nothing when not started; `start()` starts again.
   */
  stop(): void {
    if (!this.active) return;
    this.active = false;
    this.started = undefined;
    this.run++;
    clearInterval(this.tick);
    this.tick = undefined;
    this.offWelcome?.();
    this.offPolicy?.();
    this.offWelcome = this.offPolicy = undefined;
    for (const a of this.adapters) a.stop();
  }

  /**
   * Claim 4's "client locked": call with true when the app's own lock screen shows, false when it is unlocked.
   * `true` is reported as `{ state: 'inactive', reason: 'client_locked' }` (PROTOCOL.md section 2), at once while
   * started; before `start()` (or after `stop()`) it is kept and counts from the next start.
   * @throws ClientError `invalid_argument` for anything but a boolean (`'false'`, `1`, `undefined`): a truthy string
   *   would lock the user out of direct delivery; the lock state stays as it was.
   */
  setClientLocked(locked: boolean): void {
    if (typeof locked !== 'boolean') {
      throw new ClientError('invalid_argument', `setClientLocked(locked): locked must be true or false, not ${shownValue(locked)}`);
    }
    this.clientLocked = locked;
    this.evaluate();
  }

  /** The signals as of now (merged over all adapters: any lock counts, the most recent input counts). */
  signals(): PresenceSignals {
    const now = this.now();
    // A platform that applies the threshold itself counts as input just now while it says active.
    const inputs = this.states.map((s) => (s.idle === undefined ? s.lastInputAt : s.idle ? -Infinity : now)).filter((t): t is number => t !== undefined);
    const lastInputAt = inputs.length > 0 ? Math.max(...inputs) : this.startedAt;
    return {
      idleMs: Math.max(0, now - lastInputAt),
      screenLocked: this.states.some((s) => s.screenLocked),
      suspended: this.states.some((s) => s.suspended),
      clientLocked: this.clientLocked,
    };
  }

  /**
   * A threshold from `welcome.idleAfterMs` or a `policy` frame: hand it to each adapter if it changed. The time since
   * the last input is kept (a threshold change is no input): an idle user stays idle until real input, and an active
   * one turns idle when the real time since the last input reaches the new threshold, at once if it already has.
   */
  private async onThreshold(idleAfterMs: number | undefined): Promise<void> {
    const threshold = idleAfterMs ?? DEFAULT_IDLE_AFTER_MS;
    if (threshold === this.idleAfterMs) return;
    this.idleAfterMs = threshold;
    this.evaluate();
    await Promise.all(this.adapters.map(async (adapter, i) => {
      if (adapter.setIdleAfterMs) return adapter.setIdleAfterMs(threshold);
      adapter.stop();
      await adapter.start((u) => this.update(i, u), { idleAfterMs: threshold });
    }));
    this.evaluate();
  }

  private async begin(): Promise<void> {
    const run = ++this.run;
    this.active = true;
    this.memory = INITIAL_PRESENCE_MEMORY;
    this.states = this.freshStates();
    this.startedAt = this.now();
    this.idleAfterMs = this.sink.welcome?.idleAfterMs ?? DEFAULT_IDLE_AFTER_MS;
    this.offWelcome = this.sink.on('welcome', (w) => void this.onThreshold(w.idleAfterMs));
    this.offPolicy = this.sink.on('policy', (p) => void this.onThreshold(p.idleAfterMs));
    try {
      await this.startAdapters();
      if (run !== this.run) return; // stopped while the adapters started
      this.evaluate();
      this.tick = setInterval(() => this.evaluate(), this.opts.tickMs ?? 1000);
    } catch (e) {
      if (run === this.run) this.stop();
      throw e;
    }
  }

  private freshStates(): AdapterState[] {
    return this.adapters.map(() => ({ screenLocked: false, suspended: false }));
  }

  private async startAdapters(): Promise<void> {
    await Promise.all(this.adapters.map((adapter, i) => adapter.start((u) => this.update(i, u), { idleAfterMs: this.idleAfterMs })));
  }

  private update(index: number, u: PresenceUpdate): void {
    const s = this.states[index];
    if (u.idleMs !== undefined) s.lastInputAt = u.idleMs === Infinity ? -Infinity : this.now() - u.idleMs;
    if (u.idle !== undefined) s.idle = u.idle;
    else if (u.idleMs !== undefined) s.idle = undefined; // measured time again: an earlier idle flag no longer holds
    if (u.screenLocked !== undefined) s.screenLocked = u.screenLocked;
    if (u.suspended !== undefined) s.suspended = u.suspended;
    this.evaluate();
  }

  private evaluate(): void {
    if (!this.active) return;
    const step = nextPresence(this.memory, this.signals(), this.now(), {
      idleAfterMs: this.idleAfterMs,
      resumeWithinMs: this.opts.resumeWithinMs ?? DEFAULT_PRESENCE_OPTIONS.resumeWithinMs,
      activeReportEveryMs: this.opts.activeReportEveryMs ?? DEFAULT_PRESENCE_OPTIONS.activeReportEveryMs,
    });
    this.memory = step.memory;
    if (step.report) this.sink.setPresence(step.report);
  }
}
