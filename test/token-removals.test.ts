import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../base/clock.js';
import { createLogger } from '../base/logger.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { Subjects } from '../bus/subjects.js';
import type { BusMessage } from '../protocol/index.js';
import { busEventPublisher, tokenRemovalListener } from '../runtime/token-removals.js';
import { FileDeviceRegistry } from '../store/file-device-registry.js';
import { TOKEN_SWEEP_INTERVAL_MS, startTokenSweep } from '../store/token-sweep.js';
import type { TokenRemovalListener } from '../store/types.js';
import { API_KEY, JWT_SECRET, startGateway, type GatewayFixture } from './gateway-fixture.js';
import { TestClient } from './support/ws-client.js';

/** Issue 9, embedded mode: every removed token reaches the owner (token_removed) and the bus event; stale tokens are pruned. */

const DAY = 24 * 3600 * 1000;

/** The prune's log write is real I/O: wait for it on setImmediate, which the fake timers leave alone. */
async function ioUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100_000 && !cond(); i++) await new Promise((r) => setImmediate(r));
}
const T = 'c'.repeat(64);

describe('token removals in embedded mode', () => {
  let dir: string;
  let registry: FileDeviceRegistry | undefined;
  const bus = new MemoryBus();
  const subjects = new Subjects('switchboard', 8);
  const seen: { subject: string; msg: BusMessage }[] = [];
  const log = createLogger('silent');
  const record = (subject: string) => bus.subscribe(subject, (msg) => seen.push({ subject, msg }));
  record(subjects.owner('alice'));
  record(subjects.tokenRemovedEvents);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-token-removals-'));
    seen.length = 0;
  });
  afterEach(async () => {
    vi.useRealTimers();
    await registry?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const open = (now: () => number = Date.now) =>
    FileDeviceRegistry.open(dir, { now, onTokenRemoved: tokenRemovalListener({ bus, subjects, log, publishEvent: busEventPublisher(bus, subjects) }) });

  it('a token moved to bob: alice\'s owner is told (with the token), the event says who and why (without it)', async () => {
    registry = await open();
    await registry.put('alice', 'phone', { os: 'ios', token: T });
    await registry.put('bob', 'phone', { os: 'ios', token: T });
    const named = seen;
    expect(named).toEqual([
      { subject: subjects.owner('alice'), msg: { type: 'token_removed', user: 'alice', device: 'phone', token: T } },
      { subject: 'switchboard.events.token_removed', msg: { type: 'token_removed_event', user: 'alice', device: 'phone', os: 'ios', reason: 'moved' } },
    ]);
    expect(JSON.stringify(named[1].msg)).not.toContain(T);
  });

  it('the sweep prunes tokens neither stored nor seen for SWITCHBOARD_TOKEN_MAX_AGE_DAYS, on the injected clock', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    registry = await open();
    await registry.put('alice', 'old', { os: 'android', token: 'old-token' });
    await registry.put('alice', 'used', { os: 'android', token: 'used-token' });
    const stop = startTokenSweep({ registry, clock: systemClock, log, maxAgeDays: 270 });
    await vi.advanceTimersByTimeAsync(200 * DAY);
    await registry.seen('alice', 'used', Date.now()); // a session of "used" opened
    await vi.advanceTimersByTimeAsync(69 * DAY);
    expect(seen.filter((s) => s.subject === subjects.tokenRemovedEvents)).toEqual([]);
    await vi.advanceTimersByTimeAsync(1 * DAY + TOKEN_SWEEP_INTERVAL_MS);
    await ioUntil(() => seen.some((s) => s.subject === subjects.tokenRemovedEvents));
    expect(seen.filter((s) => s.subject === subjects.tokenRemovedEvents).map((s) => s.msg)).toEqual([
      { type: 'token_removed_event', user: 'alice', device: 'old', os: 'android', reason: 'pruned' },
    ]);
    const devices = await registry.list('alice');
    expect(devices.map((d) => [d.device, d.token])).toEqual(expect.arrayContaining([['old', undefined], ['used', 'used-token']]));
    await stop();
    // Stopped: nothing runs any more, however long.
    await vi.advanceTimersByTimeAsync(400 * DAY);
    expect((await registry.list('alice')).find((d) => d.device === 'used')?.token).toBe('used-token');
  });
});

/**
 * Section 3 through the public surface, wired as the embedded node wires it (file registry, tokenRemovalListener,
 * the in-process bus): a device that PUTs a new token in place of its old one gets the old one published.
 */
describe('token removals over HTTP, embedded wiring', () => {
  let dir: string;
  let registry: FileDeviceRegistry;
  let g: GatewayFixture;
  const events: BusMessage[] = [];
  const owned: BusMessage[] = [];
  const A = 'd1'.repeat(32);
  const B = 'e2'.repeat(32);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-token-replaced-'));
    events.length = 0;
    owned.length = 0;
    // The gateway fixture makes its bus; the registry reports to it once it exists, as embedded-node.ts wires it.
    let report: TokenRemovalListener = () => {};
    registry = await FileDeviceRegistry.open(dir, { onTokenRemoved: (r) => report(r) });
    g = await startGateway({}, { registry });
    report = tokenRemovalListener({ bus: g.bus, subjects: g.subjects, log: createLogger('silent'), publishEvent: busEventPublisher(g.bus, g.subjects) });
    g.bus.subscribe(g.subjects.tokenRemovedEvents, (msg) => events.push(msg));
    g.bus.subscribe(g.subjects.owner('alice'), (msg) => owned.push(msg));
  });
  afterEach(async () => {
    await g.gateway.close();
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  const put = (token: string) => g.http('PUT', '/v1/users/alice/devices/phone', { key: API_KEY, body: JSON.stringify({ os: 'ios', token }) });

  it('PUT with a new token publishes the old one as replaced (without the token); the same token again publishes nothing', async () => {
    expect((await put(A)).status).toBe(200);
    expect((await put(A)).status).toBe(200);
    expect(events).toEqual([]);
    expect((await put(B)).status).toBe(200);
    expect(events).toEqual([{ type: 'token_removed_event', user: 'alice', device: 'phone', os: 'ios', reason: 'replaced' }]);
    expect(JSON.stringify(events)).not.toContain(A);
    // The owner is not told to drop anything: the device_put that follows carries the new token in its place.
    expect(owned.map((m) => m.type)).toEqual(['device_put', 'device_put', 'device_put']);
    expect((await registry.list('alice')).map((d) => d.token)).toEqual([B]);
    expect((await put(B)).status).toBe(200);
    expect(events).toHaveLength(1);
  });

  it('a register frame with a new token publishes the old one as replaced; registering it again publishes nothing', async () => {
    const c = await TestClient.session(g.wsUrl, JWT_SECRET, { sub: 'alice', dev: 'phone', kind: 'mobile', os: 'android' });
    try {
      for (const token of ['fcm-old', 'fcm-old', 'fcm-new', 'fcm-new']) {
        c.send({ type: 'register', os: 'android', token });
        await c.next((f) => f.type === 'registered');
      }
      expect(events).toEqual([{ type: 'token_removed_event', user: 'alice', device: 'phone', os: 'android', reason: 'replaced' }]);
    } finally {
      c.close();
    }
  });
});
