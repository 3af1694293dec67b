import type { PresenceAdapter, PresenceUpdate } from '../pc-presence.js';

/**
 * Browser presence adapters (claim 4 in a web app): the Idle Detection API where the user granted it
 * (Chromium; https://wicg.github.io/idle-detection/), else input events in the page plus Page Visibility,
 * which only see this page: a user typing in another application looks idle. The APIs are passed in (defaults:
 * the globals) so each adapter runs against a fake in tests.
 */

export interface EventTargetLike {
  addEventListener(type: string, listener: () => void, options?: { passive?: boolean }): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** The Idle Detection API's detector (WICG): `userState` and `screenState` change with a `change` event. */
export interface IdleDetectorLike extends EventTargetLike {
  readonly userState: 'active' | 'idle' | null;
  readonly screenState: 'locked' | 'unlocked' | null;
  start(options: { threshold: number; signal?: AbortSignal }): Promise<void>;
}

export interface IdleDetectorClass {
  new (): IdleDetectorLike;
  requestPermission(): Promise<'granted' | 'denied'>;
}

/** The Idle Detection API refuses thresholds under 60 s (WICG spec, `start()` step "threshold < 60000: TypeError"). */
export const IDLE_DETECTOR_MIN_THRESHOLD_MS = 60_000;

function globalIdleDetector(): IdleDetectorClass | undefined {
  return (globalThis as { IdleDetector?: IdleDetectorClass }).IdleDetector;
}

/** Running `browserPresenceAdapter`s on the page signal: told when the permission is granted, to switch to the system one. */
const onGranted = new Set<() => void>();

/**
 * Asks for the `idle-detection` permission. Browsers only show the prompt from a user gesture (a click handler).
 * Resolves false where the API does not exist or the user declined. Once granted, every `browserPresenceAdapter`
 * already started on the page signal switches to the Idle Detection API (no restart needed).
 */
export async function requestIdleDetectionPermission(IdleDetector: IdleDetectorClass | undefined = globalIdleDetector()): Promise<boolean> {
  if (!IdleDetector) return false;
  let granted: boolean;
  try {
    granted = (await IdleDetector.requestPermission()) === 'granted';
  } catch {
    return false;
  }
  if (granted) for (const retry of [...onGranted]) retry();
  return granted;
}

/**
 * The Idle Detection API: system-wide input and screen lock. `start()` rejects (NotAllowedError) without the
 * permission; `browserPresenceAdapter` then falls back to the page adapter. The threshold (ms) is raised to 60 s if
 * lower. A threshold change starts a detector with the new one and stops the old once it runs (the old keeps
 * running if the new one fails to start); while the user is idle, a longer threshold waits for the user's next input
 * (the old detector's `active`): a new detector would call a user idle for less than it `active` at once, with no input.
 */
export function idleDetectorAdapter(IdleDetector: IdleDetectorClass | undefined = globalIdleDetector()): PresenceAdapter {
  /** The running detector, its abort switch and its threshold (ms). */
  let current: { detector: IdleDetectorLike; abort: AbortController; threshold: number } | undefined;
  let report: ((u: PresenceUpdate) => void) | undefined;
  /** The threshold asked for (ms) while the running detector has another one, applied at the next input. */
  let wanted: number | undefined;
  /** Bumped by every start and stop: a detector that starts after a newer start or a stop is dropped. */
  let run = 0;
  const effective = (idleAfterMs: number) => Math.max(IDLE_DETECTOR_MIN_THRESHOLD_MS, idleAfterMs);

  const launch = async (threshold: number): Promise<void> => {
    if (!IdleDetector) throw new Error('the Idle Detection API is not available in this browser');
    const mine = run;
    const abort = new AbortController();
    const detector = new IdleDetector();
    const next = { detector, abort, threshold };
    const state = () => ({ idle: detector.userState === 'idle', screenLocked: detector.screenState === 'locked' });
    detector.addEventListener('change', () => {
      if (current !== next) return;
      report?.(state());
      // The user is back: a longer threshold that waited for input applies now (its detector starts `active` too).
      if (wanted !== undefined && detector.userState === 'active') void apply(wanted);
    });
    try {
      await detector.start({ threshold, signal: abort.signal });
    } catch (e) {
      abort.abort();
      throw e;
    }
    if (mine !== run) return void abort.abort();
    current?.abort.abort();
    current = next;
    report?.(state());
  };

  const apply = async (idleAfterMs: number): Promise<void> => {
    const threshold = effective(idleAfterMs);
    if (current === undefined || threshold === current.threshold) {
      wanted = undefined;
      return;
    }
    // Idle now and a longer threshold: a new detector would say `active`, though nobody touched anything.
    if (current.detector.userState === 'idle' && threshold > current.threshold) {
      wanted = idleAfterMs;
      return;
    }
    wanted = undefined;
    try {
      await launch(threshold);
    } catch {
      /* the running detector goes on with the old threshold */
    }
  };

  return {
    signal: 'system',
    async start(update, { idleAfterMs }) {
      run++;
      current?.abort.abort();
      current = undefined;
      wanted = undefined;
      report = update;
      await launch(effective(idleAfterMs));
    },
    stop() {
      run++;
      current?.abort.abort();
      current = undefined;
      wanted = undefined;
    },
    setIdleAfterMs: apply,
  };
}

/** Events that count as the user operating the page. */
export const PAGE_INPUT_EVENTS = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart'] as const;

export interface PageTargets {
  /** Where input events are heard; default `globalThis` (window). */
  window?: EventTargetLike;
  /** Page Visibility; default `globalThis.document`. */
  document?: EventTargetLike & { readonly visibilityState: 'visible' | 'hidden' | string };
}

/**
 * The weaker signal: input events in this page (reported at most once a second) and the page becoming visible
 * count as input; no screen-lock detection. Idle time then runs from the last such event (before the first one,
 * from the reporter's start). Neither starting nor a threshold change counts as input.
 */
export function pageInputAdapter(targets: PageTargets = {}): PresenceAdapter {
  const win = targets.window ?? (globalThis as unknown as EventTargetLike);
  const doc = targets.document ?? (globalThis as { document?: PageTargets['document'] }).document;
  let off: (() => void) | undefined;
  return {
    signal: 'page',
    start(update: (u: PresenceUpdate) => void) {
      let lastSent = -Infinity;
      const onInput = () => {
        const now = Date.now();
        if (now - lastSent < 1000) return;
        lastSent = now;
        update({ idleMs: 0 });
      };
      const onVisibility = () => {
        if (doc?.visibilityState === 'visible') update({ idleMs: 0 });
      };
      for (const type of PAGE_INPUT_EVENTS) win.addEventListener(type, onInput, { passive: true });
      doc?.addEventListener('visibilitychange', onVisibility);
      off = () => {
        for (const type of PAGE_INPUT_EVENTS) win.removeEventListener(type, onInput);
        doc?.removeEventListener('visibilitychange', onVisibility);
      };
      // Starting is no input: the reporter counts idle time from its own start until the first event.
    },
    stop() {
      off?.();
      off = undefined;
    },
    // The reporter applies the threshold to the time since the last event: nothing to restart.
    setIdleAfterMs() {},
  };
}

/**
 * IdleDetector where it is granted, else the page adapter. `signal` tells which one runs (after `start`):
 * `system` or `page` (weaker; say so in the UI if it matters). Started on the page signal, it switches to the system
 * one when `requestIdleDetectionPermission` is granted later (the usual order: the page starts, the user clicks).
 */
export function browserPresenceAdapter(opts: { IdleDetector?: IdleDetectorClass } & PageTargets = {}): PresenceAdapter {
  const system = idleDetectorAdapter('IdleDetector' in opts ? opts.IdleDetector : globalIdleDetector());
  const page = pageInputAdapter(opts);
  let active: PresenceAdapter = page;
  /** Bumped by every start and stop: a switch that finishes after one is dropped. */
  let run = 0;
  let retry: (() => void) | undefined;
  /** The current idle threshold, ms (from `start` and `setIdleAfterMs`). */
  let threshold = 0;
  const forget = (): void => {
    if (retry !== undefined) onGranted.delete(retry);
    retry = undefined;
  };
  return {
    get signal() {
      return active.signal;
    },
    async start(update, o) {
      const mine = ++run;
      forget();
      threshold = o.idleAfterMs;
      try {
        await system.start(update, o);
        active = system;
      } catch {
        system.stop();
        active = page;
        await page.start(update, o);
        if (mine !== run) return;
        retry = () => {
          Promise.resolve(system.start(update, { idleAfterMs: threshold })).then(
            () => {
              if (mine !== run || active !== page) return system.stop();
              forget();
              page.stop();
              active = system;
            },
            () => system.stop(), // still refused: stays on the page signal, and waits for the next grant
          );
        };
        onGranted.add(retry);
      }
    },
    stop() {
      run++;
      forget();
      active.stop();
    },
    async setIdleAfterMs(idleAfterMs) {
      threshold = idleAfterMs; // a later switch to the system signal starts with it
      await active.setIdleAfterMs?.(idleAfterMs);
    },
  };
}
