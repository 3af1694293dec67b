import { describe, expect, it } from 'vitest';
import { Metrics } from '../base/metrics.js';
import { DashboardFeed } from '../gateway/dashboard-feed.js';
import { counterRows, figuresBetween, mergeSamples, quantile, sampleOf, windowQuantiles, type MetricSample } from '../gateway/dashboard-figures.js';
import { ManualClock } from './support/manual-clock.js';

const counter = (name: string, values: [Record<string, string>, number][]): MetricSample => ({ name, type: 'counter', values: values.map(([labels, value]) => ({ labels, value })) });

describe('dashboard figures (issue 12)', () => {
  it('a counter row has its total and its increase per second over the window', () => {
    const older = counter('x_total', [[{ route: 'pc' }, 10], [{ route: 'mobile' }, 4]]);
    const newer = counter('x_total', [[{ route: 'mobile' }, 14], [{ route: 'pc' }, 30], [{ route: 'held' }, 5]]);
    expect(counterRows(older, newer, 5)).toEqual([
      { labels: { route: 'mobile' }, total: 14, rate: 2 },
      { labels: { route: 'pc' }, total: 30, rate: 4 },
      { labels: { route: 'held' }, total: 5, rate: 1 },
    ]);
    expect(counterRows(undefined, newer, 0).map((r) => r.rate)).toEqual([0, 0, 0]);
    // A restarted counter counts from 0.
    expect(counterRows(counter('x_total', [[{}, 100]]), counter('x_total', [[{}, 3]]), 1)[0].rate).toBe(3);
  });

  it('quantiles interpolate inside the bucket as histogram_quantile does', () => {
    // 100 observations: 50 <= 0.01, 40 in (0.01, 0.1], 10 in (0.1, 1].
    const buckets: [number, number][] = [[0.01, 50], [0.1, 90], [1, 100], [Infinity, 100]];
    expect(quantile(0.5, buckets)).toBeCloseTo(0.01);
    expect(quantile(0.99, buckets)).toBeCloseTo(0.1 + 0.9 * 0.9);
    expect(quantile(0.5, [[0.01, 0], [Infinity, 0]])).toBeNull();
    expect(quantile(0.99, [[1, 1], [Infinity, 100]])).toBe(1); // past the last finite bucket: its bound
  });

  it('latency quantiles cover only the window, from the registry itself', async () => {
    const m = new Metrics({ defaultMetrics: false });
    for (let i = 0; i < 100; i++) m.decisionSeconds.observe(0.5);
    const older = sampleOf(0, (await m.registry.getMetricsAsJSON()) as unknown as MetricSample[]);
    for (let i = 0; i < 100; i++) m.decisionSeconds.observe(0.0002);
    const newer = sampleOf(1000, (await m.registry.getMetricsAsJSON()) as unknown as MetricSample[]);
    const q = windowQuantiles(older.metrics.get('switchboard_decision_seconds'), newer.metrics.get('switchboard_decision_seconds'));
    expect(q.count).toBe(100);
    expect(q.p99).toBeLessThanOrEqual(0.0005);
    expect(windowQuantiles(newer.metrics.get('switchboard_decision_seconds'), newer.metrics.get('switchboard_decision_seconds'))).toEqual({ p50: null, p99: null, count: 0 });
  });

  it('a sample is a copy: later increments do not change it', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.acks.inc(3);
    const s = sampleOf(0, (await m.registry.getMetricsAsJSON()) as unknown as MetricSample[]);
    m.acks.inc(10);
    expect(s.metrics.get('switchboard_acks_total')!.values[0].value).toBe(3);
  });

  it('shows held messages when a switchboard_held metric exists, and the cluster view when given', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.sessions.set({ kind: 'pc' }, 2);
    const metrics = (await m.registry.getMetricsAsJSON()) as unknown as MetricSample[];
    const plain = figuresBetween('n1', undefined, sampleOf(5, metrics.filter((x) => !/held/.test(x.name))));
    expect(plain.held).toEqual([]);
    expect(plain.sessions).toEqual([{ kind: 'pc', value: 2 }]);
    expect(plain.cluster).toBeUndefined();
    // The node's own held gauge (issue 8): shown as it is.
    m.heldMessages.set(7);
    const cluster = { nodes: ['a', 'b'], partitions: [{ partition: 0, owner: 'a', epoch: 3 }] };
    const f = figuresBetween('n1', undefined, sampleOf(5, (await m.registry.getMetricsAsJSON()) as unknown as MetricSample[]), cluster);
    expect(f.held).toEqual([{ name: 'switchboard_held_messages', labels: {}, value: 7 }]);
    expect(f.cluster).toEqual(cluster);
  });

  it('the feed rates a counter over the samples of its window (virtual time)', async () => {
    const clock = new ManualClock(0);
    const m = new Metrics({ defaultMetrics: false });
    const feed = new DashboardFeed({ nodeId: 'n1', metrics: m, clock, windowMs: 5000 });
    await feed.figures();
    for (let s = 1; s <= 10; s++) {
      clock.advance(1000);
      m.messagesAccepted.inc({ source: 'http' }, 20);
      const f = await feed.figures();
      // Over the window the rate is 20/s once the window is full, whatever the tick.
      expect(f.accepted[0].rate).toBeCloseTo(20);
      expect(f.windowSeconds).toBe(Math.min(s, 5));
    }
  });

  it('merges several nodes: each series adds up, histogram buckets included', () => {
    const a = [counter('x_total', [[{ via: 'pc' }, 2], [{ via: 'fcm' }, 1]]), { name: 'h', type: 'histogram', values: [{ metricName: 'h_bucket', labels: { le: 0.1 }, value: 3 }] }];
    const b = [counter('x_total', [[{ via: 'pc' }, 5]]), { name: 'h', type: 'histogram', values: [{ metricName: 'h_bucket', labels: { le: 0.1 }, value: 4 }] }];
    const merged = mergeSamples([a, b]);
    expect(merged.find((m) => m.name === 'x_total')!.values.map((v) => [v.labels.via, v.value])).toEqual([['pc', 7], ['fcm', 1]]);
    expect(merged.find((m) => m.name === 'h')!.values[0].value).toBe(7);
    expect(a[0].values[0].value).toBe(2); // inputs untouched
  });

  it('cluster totals: a node joining or leaving is not a jump in the rates', async () => {
    const clock = new ManualClock(0);
    const m = new Metrics({ defaultMetrics: false });
    const totals: Record<string, number> = { a: 1000, b: 5000 };
    let members = ['a'];
    const gather = async () => new Map(members.map((n) => [n, [counter('switchboard_messages_accepted_total', [[{ source: 'http' }, totals[n]]])]]));
    const feed = new DashboardFeed({ nodeId: 'a', metrics: m, clock, windowMs: 5000, cluster: { figures: () => ({ nodes: members, partitions: [] }), gather } });
    const rate = async () => (await feed.figures()).cluster!.totals!.accepted[0].rate;
    await rate();
    for (let s = 1; s <= 12; s++) {
      clock.advance(1000);
      if (s === 4) members = ['a', 'b']; // b joins with a large total of its own
      if (s === 9) members = ['b']; // a leaves
      for (const n of members) totals[n] += 10;
      const r = await rate();
      // 10/s per node present in both ends of the window; never the joining node's whole total.
      expect(r).toBeGreaterThanOrEqual(0);
      expect(r).toBeLessThanOrEqual(20.001);
    }
    expect((await feed.figures()).cluster!.totals!.answered).toBe(1);
  });
});
