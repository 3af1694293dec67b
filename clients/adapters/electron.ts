import type { PresenceAdapter } from '../pc-presence.js';

/**
 * Electron main process (https://www.electronjs.org/docs/latest/api/power-monitor): system idle time polled every
 * `pollMs` (`getSystemIdleTime()` is in whole seconds), `lock-screen` / `unlock-screen` (macOS and Windows only;
 * on Linux add `linuxLockAdapter`), and `suspend` reported as inactive at once (`resume` ends it).
 */

/** The part of Electron's `powerMonitor` used here; pass `require('electron').powerMonitor`. */
export interface PowerMonitorLike {
  /** Seconds since the last system-wide input. */
  getSystemIdleTime(): number;
  on(event: 'lock-screen' | 'unlock-screen' | 'suspend' | 'resume', listener: () => void): unknown;
  removeListener(event: 'lock-screen' | 'unlock-screen' | 'suspend' | 'resume', listener: () => void): unknown;
}

export interface ElectronAdapterOptions {
  /** Poll interval of `getSystemIdleTime()`, ms; 1000-2000 keeps the report within 2 s of the threshold. Default 1000. */
  pollMs?: number;
}

/**
 * The Electron adapter; call in the main process after `app.whenReady()` (powerMonitor is not usable before). Idle time
 * in ms from `getSystemIdleTime()` (seconds), screen lock from its events; `stop()` removes its listeners.
 */
export function electronPresenceAdapter(powerMonitor: PowerMonitorLike, opts: ElectronAdapterOptions = {}): PresenceAdapter {
  let off: (() => void) | undefined;
  return {
    signal: 'system',
    start(update) {
      const poll = () => update({ idleMs: powerMonitor.getSystemIdleTime() * 1000 });
      const handlers = {
        'lock-screen': () => update({ screenLocked: true }),
        // Unlocking takes a password or a touch: the user is there now.
        'unlock-screen': () => update({ screenLocked: false, idleMs: 0 }),
        suspend: () => update({ suspended: true }),
        resume: () => update({ suspended: false, idleMs: powerMonitor.getSystemIdleTime() * 1000 }),
      } as const;
      for (const [event, fn] of Object.entries(handlers)) powerMonitor.on(event as keyof typeof handlers, fn);
      const timer = setInterval(poll, opts.pollMs ?? 1000);
      poll();
      off = () => {
        clearInterval(timer);
        for (const [event, fn] of Object.entries(handlers)) powerMonitor.removeListener(event as keyof typeof handlers, fn);
      };
    },
    stop() {
      off?.();
      off = undefined;
    },
    // The threshold is applied by the reporter to the measured idle time: nothing to restart.
    setIdleAfterMs() {},
  };
}
