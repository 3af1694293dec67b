import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  IDLE_DETECTOR_MIN_THRESHOLD_MS, browserPresenceAdapter, idleDetectorAdapter, pageInputAdapter, requestIdleDetectionPermission,
  type IdleDetectorClass, type IdleDetectorLike,
} from '../clients/adapters/browser.js';
import { electronPresenceAdapter, type PowerMonitorLike } from '../clients/adapters/electron.js';
import { linuxLockAdapter, screenSaverLockSource } from '../clients/adapters/linux.js';
import { PcPresenceReporter, type PresenceSink, type PresenceUpdate } from '../clients/pc-presence.js';
import type { PcPresence, PolicyFrame, Welcome } from '../clients/wire.js';

/** Each platform adapter against a fake of its platform API (the real browser path runs in client-browser.int.test.ts). */

class FakeTarget {
  listeners = new Map<string, Set<() => void>>();
  addEventListener(type: string, l: () => void) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(l);
  }
  removeEventListener(type: string, l: () => void) {
    this.listeners.get(type)?.delete(l);
  }
  fire(type: string) {
    for (const l of this.listeners.get(type) ?? []) l();
  }
  count(): number {
    return [...this.listeners.values()].reduce((n, s) => n + s.size, 0);
  }
}

/** The Idle Detection API as WICG specifies it: permission, threshold >= 60 s, change events. */
/** `prompt`: refused until `requestPermission()` is called, which grants it (the user clicks "Allow"). */
function fakeIdleDetector(permission: 'granted' | 'denied' | 'prompt') {
  const instances: (FakeTarget & { userState: 'active' | 'idle' | null; screenState: 'locked' | 'unlocked' | null; threshold?: number; signal?: AbortSignal })[] = [];
  const Class = class extends FakeTarget implements IdleDetectorLike {
    userState: 'active' | 'idle' | null = null;
    screenState: 'locked' | 'unlocked' | null = null;
    threshold?: number;
    signal?: AbortSignal;
    constructor() {
      super();
      instances.push(this);
    }
    static async requestPermission(): Promise<'granted' | 'denied'> {
      if (permission === 'prompt') permission = 'granted';
      return permission;
    }
    async start(opts: { threshold: number; signal?: AbortSignal }) {
      if (permission !== 'granted') throw new DOMException('Idle detection permission denied', 'NotAllowedError');
      if (opts.threshold < 60_000) throw new TypeError('Minimum threshold is 1 minute.');
      this.threshold = opts.threshold;
      this.signal = opts.signal;
      this.userState = 'active';
      this.screenState = 'unlocked';
    }
  } satisfies IdleDetectorClass;
  return { Class, instances };
}

const collect = () => {
  const updates: PresenceUpdate[] = [];
  return { updates, update: (u: PresenceUpdate) => updates.push(u) };
};

describe('browser: IdleDetector', () => {
  it('reports userState and screenState changes; threshold raised to 60 s; stop aborts', async () => {
    const { Class, instances } = fakeIdleDetector('granted');
    const a = idleDetectorAdapter(Class);
    const { updates, update } = collect();
    await a.start(update, { idleAfterMs: 30_000 });
    const d = instances[0];
    expect(d.threshold).toBe(IDLE_DETECTOR_MIN_THRESHOLD_MS);
    expect(updates).toEqual([{ idle: false, screenLocked: false }]);
    d.userState = 'idle';
    d.fire('change');
    d.screenState = 'locked';
    d.fire('change');
    expect(updates.slice(1)).toEqual([{ idle: true, screenLocked: false }, { idle: true, screenLocked: true }]);
    a.stop();
    expect(d.signal!.aborted).toBe(true);
    await a.start(update, { idleAfterMs: 90_000 });
    expect(instances[1].threshold).toBe(90_000);
  });

  it('permission: requestIdleDetectionPermission says whether it was granted', async () => {
    expect(await requestIdleDetectionPermission(fakeIdleDetector('granted').Class)).toBe(true);
    expect(await requestIdleDetectionPermission(fakeIdleDetector('denied').Class)).toBe(false);
    expect(await requestIdleDetectionPermission(undefined)).toBe(false);
  });
});

describe('browser: page input + Page Visibility (the weaker signal)', () => {
  beforeEach(() => { vi.useFakeTimers(); vi.setSystemTime(1_000_000); });
  afterEach(() => { vi.useRealTimers(); });

  it('input events count as input at most once a second; becoming visible counts; stop removes every listener', () => {
    const win = new FakeTarget();
    const doc = Object.assign(new FakeTarget(), { visibilityState: 'visible' });
    const a = pageInputAdapter({ window: win, document: doc });
    expect(a.signal).toBe('page');
    const { updates, update } = collect();
    a.start(update, { idleAfterMs: 60_000 });
    expect(updates).toEqual([]); // starting is no input
    win.fire('keydown');
    win.fire('pointermove');
    expect(updates).toEqual([{ idleMs: 0 }]);
    vi.advanceTimersByTime(1000);
    win.fire('wheel');
    expect(updates).toHaveLength(2);
    doc.visibilityState = 'hidden';
    doc.fire('visibilitychange');
    expect(updates).toHaveLength(2);
    doc.visibilityState = 'visible';
    doc.fire('visibilitychange');
    expect(updates).toHaveLength(3);
    a.stop();
    expect(win.count() + doc.count()).toBe(0);
  });

  it('browserPresenceAdapter uses IdleDetector where granted, else falls back to the page adapter', async () => {
    const granted = browserPresenceAdapter({ IdleDetector: fakeIdleDetector('granted').Class, window: new FakeTarget(), document: Object.assign(new FakeTarget(), { visibilityState: 'visible' }) });
    await granted.start(() => {}, { idleAfterMs: 60_000 });
    expect(granted.signal).toBe('system');
    const win = new FakeTarget();
    const denied = browserPresenceAdapter({ IdleDetector: fakeIdleDetector('denied').Class, window: win, document: Object.assign(new FakeTarget(), { visibilityState: 'visible' }) });
    await denied.start(() => {}, { idleAfterMs: 60_000 });
    expect(denied.signal).toBe('page');
    expect(win.count()).toBeGreaterThan(0);
    const missing = browserPresenceAdapter({ IdleDetector: undefined, window: new FakeTarget(), document: Object.assign(new FakeTarget(), { visibilityState: 'visible' }) });
    await missing.start(() => {}, { idleAfterMs: 60_000 });
    expect(missing.signal).toBe('page');
  });

  it('browserPresenceAdapter started before the permission switches to IdleDetector once it is granted (the README order)', async () => {
    const { Class, instances } = fakeIdleDetector('prompt');
    const win = new FakeTarget();
    const a = browserPresenceAdapter({ IdleDetector: Class, window: win, document: Object.assign(new FakeTarget(), { visibilityState: 'visible' }) });
    const { updates, update } = collect();
    await a.start(update, { idleAfterMs: 60_000 });
    expect(a.signal).toBe('page');
    expect(await requestIdleDetectionPermission(Class)).toBe(true); // the click
    await vi.waitFor(() => expect(a.signal).toBe('system'));
    expect(win.count()).toBe(0); // the page adapter stopped
    const d = instances.at(-1)!;
    d.userState = 'idle';
    d.fire('change');
    expect(updates.at(-1)).toEqual({ idle: true, screenLocked: false });
    a.stop();
    expect(d.signal!.aborted).toBe(true);
  });

  it('a stopped browserPresenceAdapter does not switch on a later grant', async () => {
    const { Class, instances } = fakeIdleDetector('prompt');
    const win = new FakeTarget();
    const a = browserPresenceAdapter({ IdleDetector: Class, window: win, document: Object.assign(new FakeTarget(), { visibilityState: 'visible' }) });
    await a.start(() => {}, { idleAfterMs: 60_000 });
    a.stop();
    const before = instances.length;
    expect(await requestIdleDetectionPermission(Class)).toBe(true);
    await Promise.resolve();
    expect(instances.length).toBe(before); // no detector started for it
    expect(win.count()).toBe(0);
  });
});

/** Electron's powerMonitor: getSystemIdleTime() in seconds, lock-screen / unlock-screen / suspend / resume events. */
class FakePowerMonitor implements PowerMonitorLike {
  idleSeconds = 0;
  polls = 0;
  listeners = new Map<string, Set<() => void>>();
  getSystemIdleTime() {
    this.polls++;
    return this.idleSeconds;
  }
  on(event: string, l: () => void) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(l);
    return this;
  }
  removeListener(event: string, l: () => void) {
    this.listeners.get(event)?.delete(l);
    return this;
  }
  emit(event: string) {
    for (const l of this.listeners.get(event) ?? []) l();
  }
}

describe('Electron: powerMonitor', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('polls the system idle time (seconds -> ms) every pollMs; lock, unlock, suspend, resume; stop detaches', () => {
    const pm = new FakePowerMonitor();
    const a = electronPresenceAdapter(pm, { pollMs: 2000 });
    const { updates, update } = collect();
    a.start(update, { idleAfterMs: 60_000 });
    expect(updates).toEqual([{ idleMs: 0 }]);
    pm.idleSeconds = 61;
    vi.advanceTimersByTime(1999);
    expect(updates).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(updates.at(-1)).toEqual({ idleMs: 61_000 });
    pm.emit('lock-screen');
    expect(updates.at(-1)).toEqual({ screenLocked: true });
    pm.emit('unlock-screen');
    expect(updates.at(-1)).toEqual({ screenLocked: false, idleMs: 0 });
    pm.emit('suspend');
    expect(updates.at(-1)).toEqual({ suspended: true });
    pm.idleSeconds = 3;
    pm.emit('resume');
    expect(updates.at(-1)).toEqual({ suspended: false, idleMs: 3000 });
    a.stop();
    const polls = pm.polls;
    vi.advanceTimersByTime(10_000);
    expect(pm.polls).toBe(polls);
    expect([...pm.listeners.values()].every((s) => s.size === 0)).toBe(true);
  });
});

describe('Linux: logind LockedHint / org.freedesktop.ScreenSaver over D-Bus', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('polls LockedHint and the screensaver; follows ActiveChanged', async () => {
    let hint = false;
    let saver = false;
    let signal: ((active: boolean) => void) | undefined;
    const a = linuxLockAdapter({
      lockedHint: async () => hint,
      screenSaverActive: async () => saver,
      onScreenSaverActiveChanged: (l) => { signal = l; return () => { signal = undefined; }; },
    }, { pollMs: 2000 });
    const { updates, update } = collect();
    await a.start(update, { idleAfterMs: 60_000 });
    expect(a.reachable).toBe(true);
    expect(updates).toEqual([{ screenLocked: false }]);
    hint = true;
    await vi.advanceTimersByTimeAsync(2000);
    expect(updates.at(-1)).toEqual({ screenLocked: true });
    hint = false;
    await vi.advanceTimersByTimeAsync(2000);
    expect(updates.at(-1)).toEqual({ screenLocked: false });
    signal!(true);
    expect(updates.at(-1)).toEqual({ screenLocked: true });
    a.stop();
    expect(signal).toBeUndefined();
  });

  it('a lost unlock signal: the next GetActive answer ends the lock; a signal newer than a poll in flight wins over its answer', async () => {
    let saver = false;
    let answer: ((v: boolean) => void) | undefined;
    let slow = false;
    let signal: ((active: boolean) => void) | undefined;
    const a = linuxLockAdapter({
      screenSaverActive: () => (slow ? new Promise<boolean>((r) => (answer = r)) : Promise.resolve(saver)),
      onScreenSaverActiveChanged: (l) => { signal = l; return () => { signal = undefined; }; },
    }, { pollMs: 2000 });
    const { updates, update } = collect();
    await a.start(update, { idleAfterMs: 60_000 });
    saver = true;
    signal!(true); // locked
    saver = false; // unlocked, and the ActiveChanged(false) signal was lost
    await vi.advanceTimersByTimeAsync(2000);
    expect(updates.at(-1)).toEqual({ screenLocked: false });
    // A poll asks while unlocked; the lock signal comes before its (now stale) answer.
    slow = true;
    await vi.advanceTimersByTimeAsync(2000);
    signal!(true);
    answer!(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(updates.at(-1)).toEqual({ screenLocked: true });
    a.stop();
  });

  it('where D-Bus is not reachable: no signal at all, reachable false (screen lock not detected)', async () => {
    const a = linuxLockAdapter({ lockedHint: () => Promise.reject(new Error('org.freedesktop.DBus.Error.ServiceUnknown')) });
    const { updates, update } = collect();
    await a.start(update, { idleAfterMs: 60_000 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(updates).toEqual([]);
    expect(a.reachable).toBe(false);
    a.stop();
  });
});

/** A `dbus-next` session bus: an EventEmitter (an `error` nobody hears throws) whose proxy objects the test decides. */
class FakeBus extends EventEmitter {
  disconnected = false;
  constructor(private readonly proxy: () => Promise<{ getInterface(name: string): unknown }>) { super(); }
  getProxyObject(name: string, path: string) {
    expect([name, path]).toEqual(['org.freedesktop.ScreenSaver', '/org/freedesktop/ScreenSaver']);
    return this.proxy();
  }
  disconnect() { this.disconnected = true; }
}

describe('Linux: screenSaverLockSource (the session bus through a factory)', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  const warnings = () => {
    const seen: string[] = [];
    return { seen, warn: (message: string, error: unknown) => seen.push(`${message}: ${error instanceof Error ? error.message : String(error)}`) };
  };

  it('no session bus at all (sessionBus() throws at once): a warning, an empty source, the lock not detected', async () => {
    const { seen, warn } = warnings();
    const source = await screenSaverLockSource(() => { throw new Error('could not get DISPLAY environment variable to get dbus address'); }, { warn });
    expect(source).toEqual({});
    expect(seen).toEqual([expect.stringContaining('the screen lock is not detected (only idle time counts): could not get DISPLAY')]);
    const a = linuxLockAdapter(source);
    await a.start(() => {}, { idleAfterMs: 60_000 });
    expect(a.reachable).toBe(false);
    a.stop();
  });

  it('an address that cannot be reached (the bus emits error, the proxy never comes): no crash, an empty source at once', async () => {
    const { seen, warn } = warnings();
    const bus = new FakeBus(() => new Promise(() => {}));
    const pending = screenSaverLockSource(() => bus, { warn });
    bus.emit('error', new Error('connect ENOENT /run/no-such-bus')); // throws if nobody listens
    expect(await pending).toEqual({});
    expect(seen).toEqual([expect.stringContaining('connect ENOENT')]);
    expect(bus.disconnected).toBe(true);
    bus.emit('error', new Error('again')); // still heard, never thrown
  });

  it('a bus that never answers: gives up after timeoutMs ms', async () => {
    const { seen, warn } = warnings();
    let settled = false;
    const pending = screenSaverLockSource(() => new FakeBus(() => new Promise(() => {})), { warn, timeoutMs: 3000 }).then((s) => { settled = true; return s; });
    await vi.advanceTimersByTimeAsync(2999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await pending).toEqual({});
    expect(seen).toEqual([expect.stringContaining('within 3000 ms')]);
  });

  it('a ScreenSaver on the bus: GetActive and ActiveChanged drive the lock adapter; a later bus error is only warned', async () => {
    const { seen, warn } = warnings();
    const saver = Object.assign(new EventEmitter(), { active: false, GetActive() { return Promise.resolve(this.active); } });
    const bus = new FakeBus(async () => ({ getInterface: (name: string) => (name === 'org.freedesktop.ScreenSaver' ? saver : undefined) }));
    const a = linuxLockAdapter(await screenSaverLockSource(() => bus, { warn }));
    const { updates, update } = collect();
    await a.start(update, { idleAfterMs: 60_000 });
    expect(a.reachable).toBe(true);
    expect(updates).toEqual([{ screenLocked: false }]);
    saver.emit('ActiveChanged', true);
    expect(updates.at(-1)).toEqual({ screenLocked: true });
    bus.emit('error', new Error('connection reset'));
    expect(seen).toEqual([expect.stringContaining('connection reset')]);
    a.stop();
    expect(saver.listenerCount('ActiveChanged')).toBe(0);
  });
});

/** A client core stand-in for the reporter: records what it sends; the test sends `welcome` and `policy` frames. */
class PolicySink implements PresenceSink {
  sent: PcPresence[] = [];
  welcome?: Welcome;
  private listeners = { welcome: new Set<(w: Welcome) => void>(), policy: new Set<(p: PolicyFrame) => void>() };
  setPresence(p: PcPresence) { this.sent.push(p); }
  on(event: 'welcome' | 'policy', l: any) {
    this.listeners[event].add(l);
    return () => this.listeners[event].delete(l);
  }
  policy(idleAfterMs: number) { for (const l of this.listeners.policy) l({ type: 'policy', idleAfterMs }); }
  hello(idleAfterMs: number) { for (const l of this.listeners.welcome) l({ type: 'welcome', user: 'u', device: 'd', kind: 'pc', heartbeatMs: 30_000, idleAfterMs }); }
  states() { return this.sent.map((p) => (p.state === 'active' ? 'active' : p.reason)); }
}

describe('a threshold change (welcome or policy frame) is no input: each adapter in a reporter', () => {
  beforeEach(() => { vi.useFakeTimers(); vi.setSystemTime(1_000_000); });
  afterEach(() => { vi.useRealTimers(); });

  it('page input: an idle user stays idle when the policy lengthens the threshold; only real input makes it active', async () => {
    const win = new FakeTarget();
    const doc = Object.assign(new FakeTarget(), { visibilityState: 'visible' });
    const sink = new PolicySink();
    const r = new PcPresenceReporter(sink, [browserPresenceAdapter({ IdleDetector: undefined, window: win, document: doc })]);
    await r.start();
    sink.policy(5000);
    await vi.advanceTimersByTimeAsync(8000);
    expect(sink.states()).toEqual(['active', 'idle']);
    sink.policy(30_000); // idle for 8 s, under the new 30 s: still no input since, so still idle
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sink.states()).toEqual(['active', 'idle']);
    win.fire('keydown');
    expect(sink.states()).toEqual(['active', 'idle', 'active']);
    r.stop();
  });

  it('page input: a shorter threshold counts from the last real input (the first welcome does not restart the idle clock)', async () => {
    const win = new FakeTarget();
    const doc = Object.assign(new FakeTarget(), { visibilityState: 'visible' });
    const sink = new PolicySink();
    const r = new PcPresenceReporter(sink, [pageInputAdapter({ window: win, document: doc })]);
    await r.start();
    win.fire('pointerdown');
    await vi.advanceTimersByTimeAsync(4000);
    sink.hello(5000); // the first welcome, 4 s after the last input: idle 1 s later, not 5 s
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.states()).toEqual(['active', 'idle']);
    await vi.advanceTimersByTimeAsync(10_000);
    sink.policy(3000); // already idle longer than that: stays idle, nothing new to report
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.states()).toEqual(['active', 'idle']);
    r.stop();
  });

  it('IdleDetector: while idle, a longer threshold waits for real input; a new detector is no input', async () => {
    const { Class, instances } = fakeIdleDetector('granted');
    const sink = new PolicySink();
    const r = new PcPresenceReporter(sink, [idleDetectorAdapter(Class)]);
    await r.start();
    const first = instances[0];
    first.userState = 'idle';
    first.fire('change');
    expect(sink.states()).toEqual(['active', 'idle']);
    sink.policy(300_000); // a detector with 300 s would start `active`: none is started while the user is away
    await vi.advanceTimersByTimeAsync(5000);
    expect(sink.states()).toEqual(['active', 'idle']);
    expect(instances).toHaveLength(1);
    first.userState = 'active'; // the user is back
    first.fire('change');
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.states()).toEqual(['active', 'idle', 'active']);
    expect(instances.map((d) => d.threshold)).toEqual([60_000, 300_000]);
    expect(first.signal!.aborted).toBe(true);
    sink.policy(120_000); // active: the shorter one applies at once
    await vi.advanceTimersByTimeAsync(0);
    expect(instances.map((d) => d.threshold)).toEqual([60_000, 300_000, 120_000]);
    expect(sink.states()).toEqual(['active', 'idle', 'active']);
    r.stop();
  });

  it('Electron: the threshold is applied to the measured idle time; nothing restarts, an idle user stays idle', async () => {
    const pm = new FakePowerMonitor();
    const sink = new PolicySink();
    const r = new PcPresenceReporter(sink, [electronPresenceAdapter(pm)]);
    await r.start();
    pm.idleSeconds = 70;
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.states()).toEqual(['active', 'idle']);
    const listeners = [...pm.listeners.values()].reduce((n, l) => n + l.size, 0);
    sink.policy(120_000);
    await vi.advanceTimersByTimeAsync(5000);
    pm.idleSeconds = 75;
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.states()).toEqual(['active', 'idle']);
    expect([...pm.listeners.values()].reduce((n, l) => n + l.size, 0)).toBe(listeners);
    pm.idleSeconds = 0;
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.states()).toEqual(['active', 'idle', 'active']);
    r.stop();
  });
});
