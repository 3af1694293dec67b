import { describe, expect, it } from 'vitest';
import { parseConfig } from '../runtime/config.js';
import { applyHeapGrowth } from '../runtime/heap-growth.js';

describe('V8 heap growth between full GCs (issue 13: full GCs were most of the p99 at 10k msgs/s)', () => {
  it('sets --heap-growing-percent to the configured percent, default 300', () => {
    const set: string[] = [];
    applyHeapGrowth(parseConfig({}).heapGrowthPercent, (f) => set.push(f));
    applyHeapGrowth(parseConfig({ SWITCHBOARD_HEAP_GROWTH_PERCENT: '150' }).heapGrowthPercent, (f) => set.push(f));
    expect(set).toEqual(['--heap-growing-percent=300', '--heap-growing-percent=150']);
  });

  it('leaves V8 its own choice with 0', () => {
    const set: string[] = [];
    applyHeapGrowth(parseConfig({ SWITCHBOARD_HEAP_GROWTH_PERCENT: '0' }).heapGrowthPercent, (f) => set.push(f));
    expect(set).toEqual([]);
  });

  it('is a flag this V8 knows: setting it prints no "unrecognized flag" line', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['-e', "require('node:v8').setFlagsFromString('--heap-growing-percent=300')"], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
