import { describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../base/metrics.js';

describe('HotCounter', () => {
  it('reads the same as a plain prom-client counter at every scrape, counts added since the last read only once', async () => {
    const registry = new Registry();
    const hot = new HotCounter({ name: 'hot_total', help: 'h', labelNames: ['route', 'reason'] as const, registers: [registry] });
    const plain = new Counter({ name: 'plain_total', help: 'h', labelNames: ['route', 'reason'] as const, registers: [registry] });
    const both = (labels: { route: string; reason: string }, n?: number) => {
      hot.inc(labels, n);
      plain.inc(labels, n);
    };
    const same = async () => {
      const text = await registry.metrics();
      const lines = (name: string) => text.split('\n').filter((l) => l.startsWith(name)).map((l) => l.slice(name.length)).sort();
      expect(lines('hot_total')).toEqual(lines('plain_total'));
      expect(lines('hot_total').length).toBeGreaterThan(0);
    };
    both({ route: 'pc', reason: 'active' });
    both({ route: 'mobile', reason: 'idle' }, 3);
    both({ route: 'pc', reason: 'active' });
    await same();
    await same(); // a second read adds nothing
    both({ route: 'held', reason: 'unreachable' });
    both({ route: 'pc', reason: 'active' }, 5);
    await same();
    expect((await hot.get()).values.find((v) => v.labels.route === 'pc')?.value).toBe(7);
  });

  it('keys a one-label counter by the value alone and reads the same as a plain counter', async () => {
    const registry = new Registry();
    const hot = new HotCounter({ name: 'hot_total', help: 'h', labelNames: ['via'] as const, registers: [registry] });
    const plain = new Counter({ name: 'plain_total', help: 'h', labelNames: ['via'] as const, registers: [registry] });
    for (const [via, n] of [['pc', 1], ['mobile', 2], ['pc', 3], ['apns', 1]] as const) {
      hot.inc({ via }, n);
      plain.inc({ via }, n);
    }
    const text = await registry.metrics();
    const lines = (name: string) => text.split('\n').filter((l) => l.startsWith(name)).map((l) => l.slice(name.length)).sort();
    expect(lines('hot_total')).toEqual(lines('plain_total'));
    expect(lines('hot_total')).toContain('{via="pc"} 4');
  });
});

describe('HotHistogram', () => {
  const buckets = [0.001, 0.005, 0.01, 0.1, 1];
  const lines = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(name)).map((l) => l.slice(name.length));

  it('exports what a prom-client Histogram with the same observations exports, as text and as JSON', async () => {
    const registry = new Registry();
    const hot = new HotHistogram({ name: 'hot_seconds', help: 'h', labelNames: ['via'] as const, buckets, registers: [registry] });
    const plain = new Histogram({ name: 'plain_seconds', help: 'h', labelNames: ['via'] as const, buckets, registers: [registry] });
    // On a bound, between bounds, below the first, above the last (only +Inf), zero.
    const seen = [0.001, 0.0042, 0.00005, 7, 0, 0.1, 0.05, 1, 0.3];
    for (const [i, v] of seen.entries()) {
      const via = i % 3 === 0 ? 'pc' : 'mobile';
      hot.observe({ via }, v);
      plain.observe({ via }, v);
    }
    const text = await registry.metrics();
    expect(lines(text, 'hot_seconds')).toEqual(lines(text, 'plain_seconds'));
    expect(lines(text, 'hot_seconds')).toContain('_bucket{le="0.005",via="pc"} 1');
    expect(lines(text, 'hot_seconds')).toContain('_bucket{le="+Inf",via="pc"} 3');
    expect(lines(text, 'hot_seconds')).toContain('_count{via="mobile"} 6');
    expect(text).toContain('# TYPE hot_seconds histogram');
    const json = await registry.getMetricsAsJSON();
    // A histogram's JSON values carry `metricName` (`<name>_bucket`, `_sum`, `_count`), which prom-client's type omits.
    const values = (name: string) => json.find((m) => m.name === name)!.values.map((v) => ({ labels: v.labels, value: v.value, metricName: (v as { metricName?: string }).metricName?.replace(name, '') }));
    expect(values('hot_seconds')).toEqual(values('plain_seconds'));
  });

  it('observes without labels, and refuses a value that is not a finite number as prom-client does', async () => {
    const registry = new Registry();
    const hot = new HotHistogram({ name: 'hot_seconds', help: 'h', buckets, registers: [registry] });
    const plain = new Histogram({ name: 'plain_seconds', help: 'h', buckets, registers: [registry] });
    for (const v of [0.002, 0.5, 3]) {
      hot.observe(v);
      plain.observe(v);
    }
    expect(() => hot.observe(Number.NaN)).toThrow(TypeError);
    expect(() => plain.observe(Number.NaN)).toThrow(TypeError);
    const text = await registry.metrics();
    expect(lines(text, 'hot_seconds')).toEqual(lines(text, 'plain_seconds'));
    expect(lines(text, 'hot_seconds')).toContain('_sum 3.502');
  });
});
