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
