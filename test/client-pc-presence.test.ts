import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  INITIAL_PRESENCE_MEMORY, nextPresence, type PresenceMemory, type PresenceOptions, type PresenceSignals,
} from '../clients/pc-presence-machine.js';
import { PcPresenceReporter, type PresenceAdapter, type PresenceUpdate } from '../clients/pc-presence.js';
import { ClientError } from '../clients/close-codes.js';
import type { PcPresence, PolicyFrame, Welcome } from '../clients/wire.js';

/** Claim 4 on the PC: the pure state machine, as a table, then the reporter that drives it. */

const OPTS: PresenceOptions = { idleAfterMs: 60_000, resumeWithinMs: 5000, activeReportEveryMs: 60_000 };
const T0 = 1_000_000;
const calm: PresenceSignals = { idleMs: 0, screenLocked: false, suspended: false, clientLocked: false };
const active: PcPresence = { state: 'active' };
const inactive = (reason: 'idle' | 'screen_locked' | 'client_locked'): PcPresence => ({ state: 'inactive', reason });
const reportedActive: PresenceMemory = { reported: active, activeReportedAt: T0 };
const reportedInactive = (reason: 'idle' | 'screen_locked' | 'client_locked'): PresenceMemory => ({ reported: inactive(reason), activeReportedAt: T0 });

describe('nextPresence: claim 4 table', () => {
  const rows: [name: string, memory: PresenceMemory, signals: Partial<PresenceSignals>, now: number, report: PcPresence | undefined][] = [
    // Claim 4, condition 1: no input for the preset time.
    ['first evaluation with recent input reports active', INITIAL_PRESENCE_MEMORY, { idleMs: 1000 }, T0, active],
    ['claim 4 (1) no input for the preset time: idle at the threshold', reportedActive, { idleMs: 60_000 }, T0 + 60_000, inactive('idle')],
    ['claim 4 (1) just under the threshold stays active (nothing to send)', reportedActive, { idleMs: 59_999 }, T0 + 59_999, undefined],
    // Claim 4, condition 2: screen locked (suspend counts as locked, at once).
    ['claim 4 (2) screen locked: inactive at once, whatever the idle time', reportedActive, { screenLocked: true }, T0 + 1000, inactive('screen_locked')],
    ['claim 4 (2) suspend: inactive at once as screen_locked', reportedActive, { suspended: true }, T0 + 1000, inactive('screen_locked')],
    // Claim 4, condition 3: client locked.
    ['claim 4 (3) client locked: inactive at once', reportedActive, { clientLocked: true }, T0 + 1000, inactive('client_locked')],
    ['client lock wins over screen lock', reportedActive, { clientLocked: true, screenLocked: true }, T0 + 1000, inactive('client_locked')],
    ['screen lock while idle changes the reason', reportedInactive('idle'), { idleMs: 90_000, screenLocked: true }, T0 + 90_000, inactive('screen_locked')],
    ['unlock with fresh input: active again at once', reportedInactive('screen_locked'), { idleMs: 500 }, T0 + 5000, active],
    ['client unlocked with fresh input: active', reportedInactive('client_locked'), { idleMs: 0 }, T0 + 5000, active],
    // Hysteresis: once inactive, only fresh input brings it back.
    ['hysteresis: idle stays idle when input is not fresh (idle time under the threshold, over resumeWithin)', reportedInactive('idle'), { idleMs: 30_000 }, T0 + 90_000, undefined],
    ['hysteresis: idle -> active on input within resumeWithinMs', reportedInactive('idle'), { idleMs: 4999 }, T0 + 90_000, active],
    ['unlock without fresh input reports idle, not active', reportedInactive('screen_locked'), { idleMs: 20_000 }, T0 + 20_000, inactive('idle')],
    // Rate limit of active reports (Mattermost desktop: one per 60 s).
    ['repeated active within 60 s is not sent again', reportedActive, { idleMs: 0 }, T0 + 59_999, undefined],
    ['active again after 60 s with input since the last report', reportedActive, { idleMs: 0 }, T0 + 60_000, active],
    ['nothing changes: nothing sent', reportedInactive('idle'), { idleMs: 120_000 }, T0 + 120_000, undefined],
  ];

  it.each(rows)('%s', (_, memory, signals, now, report) => {
    const step = nextPresence(memory, { ...calm, ...signals }, now, OPTS);
    expect(step.report).toEqual(report);
    if (report) expect(step.memory.reported).toEqual(report);
    else expect(step.memory).toBe(memory);
  });

  it('active is repeated only when there was input since the last active report', () => {
    const opts = { ...OPTS, activeReportEveryMs: 10_000 };
    expect(nextPresence(reportedActive, { ...calm, idleMs: 25_000 }, T0 + 20_000, opts).report).toBeUndefined();
    expect(nextPresence(reportedActive, { ...calm, idleMs: 15_000 }, T0 + 20_000, opts).report).toEqual(active);
  });

  it('records when active was last reported', () => {
    expect(nextPresence(reportedInactive('idle'), calm, T0 + 1234, OPTS).memory.activeReportedAt).toBe(T0 + 1234);
    expect(nextPresence(reportedActive, { ...calm, screenLocked: true }, T0 + 99, OPTS).memory.activeReportedAt).toBe(T0);
  });

  it('a threshold under resumeWithinMs: coming back needs input within the threshold', () => {
    const opts = { ...OPTS, idleAfterMs: 2000 };
    expect(nextPresence(reportedInactive('idle'), { ...calm, idleMs: 2500 }, T0, opts).report).toBeUndefined();
    expect(nextPresence(reportedInactive('idle'), { ...calm, idleMs: 1000 }, T0, opts).report).toEqual(active);
  });
});

/** A platform adapter whose updates the test pushes by hand. */
class FakeAdapter implements PresenceAdapter {
  signal: 'system' | 'page' = 'system';
  update?: (u: PresenceUpdate) => void;
  starts: number[] = [];
  stops = 0;
  start(update: (u: PresenceUpdate) => void, opts: { idleAfterMs: number }) {
    this.update = update;
    this.starts.push(opts.idleAfterMs);
  }
  stop() {
    this.stops++;
  }
}

class FakeSink {
  sent: PcPresence[] = [];
  welcome?: Welcome;
  private onWelcome?: (w: Welcome) => void;
  private onPolicy?: (p: PolicyFrame) => void;
  setPresence(p: PcPresence) {
    this.sent.push(p);
  }
  on(event: 'welcome' | 'policy', l: ((w: Welcome) => void) | ((p: PolicyFrame) => void)) {
    if (event === 'welcome') this.onWelcome = l as (w: Welcome) => void;
    else this.onPolicy = l as (p: PolicyFrame) => void;
    return () => { if (event === 'welcome') this.onWelcome = undefined; else this.onPolicy = undefined; };
  }
  sendPolicy(idleAfterMs: number) {
    this.onPolicy?.({ type: 'policy', idleAfterMs });
  }
  sendWelcome(idleAfterMs?: number) {
    this.onWelcome?.({ type: 'welcome', user: 'u', device: 'd', kind: 'pc', heartbeatMs: 30_000, ...(idleAfterMs ? { idleAfterMs } : {}) });
  }
}

describe('PcPresenceReporter', () => {
  beforeEach(() => { vi.useFakeTimers(); vi.setSystemTime(T0); });
  afterEach(() => { vi.useRealTimers(); });

  it('reports active at start, idle after the default 60 s without input, active on input', async () => {
    const sink = new FakeSink();
    const adapter = new FakeAdapter();
    const r = new PcPresenceReporter(sink, [adapter]);
    await r.start();
    expect(sink.sent).toEqual([active]);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(sink.sent).toEqual([active]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.sent).toEqual([active, inactive('idle')]);
    adapter.update!({ idleMs: 0 });
    expect(sink.sent).toEqual([active, inactive('idle'), active]);
    r.stop();
  });

  it('takes the threshold from welcome.idleAfterMs and restarts the adapters with it', async () => {
    const sink = new FakeSink();
    const adapter = new FakeAdapter();
    const r = new PcPresenceReporter(sink, [adapter]);
    await r.start();
    sink.sendWelcome(120_000);
    await vi.advanceTimersByTimeAsync(0);
    expect(adapter.starts).toEqual([60_000, 120_000]);
    expect(adapter.stops).toBe(1);
    await vi.advanceTimersByTimeAsync(100_000);
    expect(sink.sent).toEqual([active]);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(sink.sent).toEqual([active, inactive('idle')]);
    sink.sendWelcome(120_000); // same threshold: no restart
    expect(adapter.starts).toHaveLength(2);
    r.stop();
  });

  it('a policy frame mid-session applies its idleAfterMs at once (the user changed the policy), like a welcome', async () => {
    const sink = new FakeSink();
    const adapter = new FakeAdapter();
    const r = new PcPresenceReporter(sink, [adapter]);
    await r.start();
    await vi.advanceTimersByTimeAsync(20_000);
    sink.sendPolicy(30_000); // 20 s without input already: idle 10 s later, not at the 60 s default
    await vi.advanceTimersByTimeAsync(0);
    expect(adapter.starts).toEqual([60_000, 30_000]);
    expect(adapter.stops).toBe(1);
    await vi.advanceTimersByTimeAsync(9000);
    expect(sink.sent).toEqual([active]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.sent).toEqual([active, inactive('idle')]);
    sink.sendPolicy(30_000); // same threshold: no restart
    expect(adapter.starts).toHaveLength(2);
    r.stop();
    sink.sendPolicy(90_000); // stopped: the listener is gone
    expect(adapter.starts).toHaveLength(2);
  });

  it('a session already open when the reporter starts: its welcome.idleAfterMs is used', async () => {
    const sink = new FakeSink();
    sink.welcome = { type: 'welcome', user: 'u', device: 'd', kind: 'pc', heartbeatMs: 30_000, idleAfterMs: 300_000 };
    const adapter = new FakeAdapter();
    const r = new PcPresenceReporter(sink, [adapter]);
    await r.start();
    expect(adapter.starts).toEqual([300_000]);
    await vi.advanceTimersByTimeAsync(299_000);
    expect(sink.sent).toEqual([active]);
    r.stop();
  });

  it('client lock (the app API) and screen lock from any adapter; a platform idle flag wins over time', async () => {
    const sink = new FakeSink();
    const electron = new FakeAdapter();
    const linux = new FakeAdapter();
    const r = new PcPresenceReporter(sink, [electron, linux]);
    await r.start();
    r.setClientLocked(true);
    expect(sink.sent.at(-1)).toEqual(inactive('client_locked'));
    r.setClientLocked(false);
    expect(sink.sent.at(-1)).toEqual(active);
    linux.update!({ screenLocked: true });
    expect(sink.sent.at(-1)).toEqual(inactive('screen_locked'));
    linux.update!({ screenLocked: false });
    electron.update!({ idleMs: 0 });
    expect(sink.sent.at(-1)).toEqual(active);
    electron.update!({ idle: true });
    expect(sink.sent.at(-1)).toEqual(inactive('idle'));
    expect(r.weakSignal).toBe(false);
    r.stop();
  });

  it('setClientLocked refuses anything but a boolean (invalid_argument): the lock stays as it was', async () => {
    const sink = new FakeSink();
    const r = new PcPresenceReporter(sink, [new FakeAdapter()]);
    await r.start();
    for (const bad of ['false', 'true', 1, 0, undefined, null, {}]) {
      expect(() => r.setClientLocked(bad as boolean)).toThrow(expect.objectContaining({ name: 'ClientError', code: 'invalid_argument' }));
    }
    expect(() => r.setClientLocked('false' as never)).toThrow('setClientLocked(locked): locked must be true or false, not "false"');
    expect(r.signals().clientLocked).toBe(false);
    expect(sink.sent).toEqual([active]);
    r.setClientLocked(true);
    expect(sink.sent).toEqual([active, inactive('client_locked')]);
    r.stop();
  });

  it('start() twice starts once (one timer, one listener each, adapters started once); stop() then start() starts afresh', async () => {
    const sink = new CountingSink();
    const adapter = new FakeAdapter();
    const r = new PcPresenceReporter(sink, [adapter]);
    const first = r.start();
    const second = r.start(); // while the first is still starting
    await first;
    await r.start(); // once started
    expect(adapter.starts).toEqual([60_000]);
    expect(vi.getTimerCount()).toBe(1);
    expect(sink.listeners).toBe(2); // welcome and policy
    expect(sink.sent).toEqual([active]);
    expect(second).toBe(first);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sink.sent).toEqual([active, inactive('idle')]);

    adapter.update!({ screenLocked: true });
    r.stop();
    r.stop();
    expect(vi.getTimerCount()).toBe(0);
    expect(sink.listeners).toBe(0);
    expect(adapter.stops).toBe(1);
    r.setClientLocked(true); // stopped: kept, not reported
    expect(sink.sent).toEqual([active, inactive('idle'), inactive('screen_locked')]);
    r.setClientLocked(false);

    await r.start(); // afresh: the lock seen before the stop is forgotten, idle time counts from now
    expect(adapter.starts).toEqual([60_000, 60_000]);
    expect(vi.getTimerCount()).toBe(1);
    expect(sink.listeners).toBe(2);
    expect(sink.sent.at(-1)).toEqual(active);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(sink.sent.at(-1)).toEqual(active);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sink.sent.at(-1)).toEqual(inactive('idle'));
    r.stop();
  });

  it('stop() while the adapters are still starting: no timer is left behind; a sink that refuses the presence rejects start() and stops', async () => {
    const sink = new CountingSink();
    let started!: () => void;
    const slow = new FakeAdapter();
    slow.start = (update) => { slow.update = update; return new Promise<void>((resolve) => { started = resolve; }); };
    const r = new PcPresenceReporter(sink, [slow]);
    const starting = r.start();
    r.stop();
    started();
    await starting;
    expect(vi.getTimerCount()).toBe(0);
    expect(sink.sent).toEqual([]);

    const mobile = new CountingSink();
    mobile.setPresence = () => { throw new ClientError('presence_not_allowed', 'a mobile session cannot report presence.state "active"'); };
    const r2 = new PcPresenceReporter(mobile, [new FakeAdapter()]);
    await expect(r2.start()).rejects.toMatchObject({ code: 'presence_not_allowed' });
    expect(vi.getTimerCount()).toBe(0);
    expect(mobile.listeners).toBe(0);
  });
});

/** A sink that counts its subscribed listeners (FakeSink keeps one per event, so it cannot show a doubled one). */
class CountingSink extends FakeSink {
  listeners = 0;
  override on(event: 'welcome' | 'policy', l: ((w: Welcome) => void) | ((p: PolicyFrame) => void)) {
    const off = super.on(event, l);
    this.listeners++;
    let on = true;
    return () => {
      if (on) this.listeners--;
      on = false;
      off();
    };
  }
}
