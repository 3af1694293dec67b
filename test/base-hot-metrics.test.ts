import { describe, expect, it } from 'vitest';
import { Counter, Registry } from 'prom-client';
import { HotCounter } from '../base/metrics.js';

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
});
