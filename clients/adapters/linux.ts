import type { PresenceAdapter } from '../pc-presence.js';

/**
 * Screen lock on Linux, where Electron emits no `lock-screen`: systemd-logind's `LockedHint` property of the
 * session (org.freedesktop.login1.Session, https://www.freedesktop.org/software/systemd/man/latest/org.freedesktop.login1.html)
 * and/or `org.freedesktop.ScreenSaver.GetActive` with its `ActiveChanged` signal (freedesktop Idle Inhibition spec).
 * The D-Bus calls are passed in (e.g. made with the `dbus-next` package; README shows how), so this file needs no
 * D-Bus library. Where neither is reachable (no session bus, a sandbox, a desktop without them) the screen lock is
 * not detected: `reachable` stays false and only idle time counts.
 */
export interface LinuxLockSource {
  /** logind `LockedHint` of this session. */
  lockedHint?(): Promise<boolean>;
  /** `org.freedesktop.ScreenSaver.GetActive()`. */
  screenSaverActive?(): Promise<boolean>;
  /** Subscribes to `org.freedesktop.ScreenSaver.ActiveChanged`; returns the unsubscribe function. */
  onScreenSaverActiveChanged?(listener: (active: boolean) => void): () => void;
}

export interface LinuxLockAdapter extends PresenceAdapter {
  /** True once one of the sources answered. */
  readonly reachable: boolean;
}

/**
 * Polls the given sources every `pollMs` (default 2000); locked when logind's hint or the screen saver's newest state
 * (signal or poll) says locked.
 */
export function linuxLockAdapter(source: LinuxLockSource, opts: { pollMs?: number } = {}): LinuxLockAdapter {
  let reachable = false;
  let off: (() => void) | undefined;
  const ask = async (call?: () => Promise<boolean>): Promise<boolean | undefined> => {
    if (!call) return undefined;
    try {
      const v = await call();
      reachable = true;
      return v;
    } catch {
      return undefined; // not reachable (now): no signal rather than a wrong one
    }
  };
  return {
    signal: 'system',
    get reachable() {
      return reachable;
    },
    async start(update) {
      // The screen saver's state: the last `ActiveChanged` or `GetActive` answer, whichever is newer. A poll's answer
      // replaces a signal's, so a lost unlock signal is caught at the next poll as a lost lock signal is.
      let saverActive: boolean | undefined;
      let signals = 0;
      const poll = async () => {
        const seen = signals;
        const [hint, saver] = await Promise.all([ask(source.lockedHint?.bind(source)), ask(source.screenSaverActive?.bind(source))]);
        // A signal that came while GetActive was on its way is newer than its answer.
        if (saver !== undefined && signals === seen) saverActive = saver;
        if (hint === undefined && saverActive === undefined) return;
        update({ screenLocked: hint === true || saverActive === true });
      };
      const unsubscribe = source.onScreenSaverActiveChanged?.((active) => {
        reachable = true;
        signals++;
        saverActive = active;
        update({ screenLocked: active });
      });
      const timer = setInterval(() => void poll(), opts.pollMs ?? 2000);
      off = () => {
        clearInterval(timer);
        unsubscribe?.();
      };
      await poll();
    },
    stop() {
      off?.();
      off = undefined;
    },
    // Screen lock only: the idle threshold does not concern it.
    setIdleAfterMs() {},
  };
}

/** The part of a D-Bus connection used by `screenSaverLockSource`; `dbus-next`'s `sessionBus()` fits. */
export interface DbusBusLike {
  getProxyObject(name: string, path: string): Promise<{ getInterface(name: string): unknown }>;
  /** `dbus-next` emits `error` on the bus (an unreachable address, a dropped connection); unheard, it would crash. */
  on?(event: 'error', listener: (error: unknown) => void): unknown;
  disconnect?(): void;
}

/** `org.freedesktop.ScreenSaver` as `dbus-next` proxies it: methods return promises, signals are events. */
interface ScreenSaverProxy {
  GetActive(): Promise<boolean>;
  on(event: 'ActiveChanged', listener: (active: boolean) => void): unknown;
  removeListener(event: 'ActiveChanged', listener: (active: boolean) => void): unknown;
}

export interface ScreenSaverSourceOptions {
  /** How long to wait for the bus and the ScreenSaver service before giving up, ms. Default 5000. */
  timeoutMs?: number;
  /** Told why the screen lock will not be detected, or that the bus failed later. Default `console.warn`. */
  warn?: (message: string, error: unknown) => void;
}

/** The D-Bus name and object path of the freedesktop screen saver (freedesktop Idle Inhibition spec). */
const SCREEN_SAVER = 'org.freedesktop.ScreenSaver';
const SCREEN_SAVER_PATH = '/org/freedesktop/ScreenSaver';

/**
 * A `LinuxLockSource` on `org.freedesktop.ScreenSaver` (GetActive, ActiveChanged) of the session bus that `openBus`
 * opens, e.g. `() => dbus.sessionBus()` with `dbus-next`. Never throws or rejects: where the bus cannot be had (no
 * `DBUS_SESSION_BUS_ADDRESS` nor `DISPLAY`: `sessionBus()` throws at once; an address that cannot be reached: the bus
 * emits `error` and never answers; no ScreenSaver service) it warns once and resolves, within `timeoutMs` (default
 * 5000 ms), to an empty source: `linuxLockAdapter` then stays `reachable: false`, the screen lock is not detected
 * and only idle time counts (README "PC presence"). An `error` the bus emits later is warned about, never thrown.
 */
export async function screenSaverLockSource(openBus: () => DbusBusLike, opts: ScreenSaverSourceOptions = {}): Promise<LinuxLockSource> {
  const warn = opts.warn ?? ((message, error) => console.warn(message, error));
  const timeoutMs = opts.timeoutMs ?? 5000;
  let bus: DbusBusLike | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    bus = openBus();
    let failed: (error: unknown) => void = () => {};
    const busError = new Promise<never>((_, reject) => { failed = reject; });
    busError.catch(() => {}); // settled by the race below, or never read
    let connected = false;
    bus.on?.('error', (error) => {
      if (!connected) failed(error);
      else warn('switchboard: the D-Bus session bus failed; the screen lock is not detected until it answers again', error);
    });
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the D-Bus session bus within ${timeoutMs} ms`)), timeoutMs);
    });
    const object = await Promise.race([bus.getProxyObject(SCREEN_SAVER, SCREEN_SAVER_PATH), busError, late]);
    const saver = object.getInterface(SCREEN_SAVER) as ScreenSaverProxy;
    connected = true;
    return {
      screenSaverActive: () => saver.GetActive(),
      onScreenSaverActiveChanged(listener) {
        saver.on('ActiveChanged', listener);
        return () => void saver.removeListener('ActiveChanged', listener);
      },
    };
  } catch (e) {
    warn('switchboard: no org.freedesktop.ScreenSaver on the D-Bus session bus; the screen lock is not detected (only idle time counts)', e);
    try {
      bus?.disconnect?.();
    } catch {
      /* already gone */
    }
    return {};
  } finally {
    clearTimeout(timer);
  }
}
