import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { harness, until } from './support/actors-fakes.js';

/** The metrics the dashboard and the Grafana dashboard read from the user actor (issue 12). */

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => vi.useRealTimers());

let h: ReturnType<typeof harness>;
afterEach(() => h?.router.stop());

const histogram = async (via: string, of: 'deliverySeconds' | 'heldDeliverySeconds' = 'deliverySeconds') => {
  const metric = h.metrics[of];
  const values = (await metric.get()).values.filter((v) => v.labels.via === via);
  return {
    count: values.find((v) => v.metricName === `${metric.name}_count`)?.value ?? 0,
    sum: values.find((v) => v.metricName === `${metric.name}_sum`)?.value ?? 0,
  };
};

describe('dashboard metrics from the user actor', () => {
  it('routing decisions are counted by route and reason', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    h.route('u2', 'm2');
    await until(() => h.routed.length === 2);
    expect((await h.metrics.messagesRouted.get()).values.map((v) => v.labels).sort((a, b) => String(a.route).localeCompare(String(b.route)))).toEqual([
      { route: 'held', reason: 'no_pc' },
      { route: 'pc', reason: 'pc_active' },
    ]);
  });

  it('delivery latency runs from acceptance to the ack, in seconds, by channel', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1'); // accepted now
    await until(() => h.deliveries().length === 1);
    await vi.advanceTimersByTimeAsync(40);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    const pc = await histogram('pc');
    expect(pc.count).toBe(1);
    expect(pc.sum).toBeCloseTo(0.04, 2);
  });

  it('a message held first counts apart, from acceptance to its ack after the replay', async () => {
    h = harness();
    h.route('u1', 'm1'); // nobody there: held
    await until(() => h.routed.length === 1);
    await vi.advanceTimersByTimeAsync(120_000);
    h.openPc('u1', 'pc', 's1'); // section 4: a session opened, the held message is replayed
    await until(() => h.deliveries().length === 1);
    const observed = vi.spyOn(h.metrics.heldDeliverySeconds, 'observe');
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => observed.mock.calls.length === 1);
    expect((await histogram('pc', 'heldDeliverySeconds')).count).toBe(1);
    expect((await histogram('pc', 'heldDeliverySeconds')).sum).toBeCloseTo(120, 0);
    expect((await histogram('pc')).count).toBe(0); // live latency stays what a healthy system shows
  });

  it('a vendor push counts once the vendor accepted it', async () => {
    h = harness();
    await h.registry.put('u1', 'pixel', { os: 'android', token: 'fcm-tok' });
    h.route('u1', 'm1');
    await until(() => h.settled.length === 1);
    expect((await histogram('fcm')).count).toBe(1);
    expect((await histogram('pc')).count).toBe(0);
  });
});
