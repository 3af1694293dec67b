import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { DataDirLock } from '../store/data-dir-lock.js';
import { StoreHealth } from '../store/store-health.js';
import { ManualClock } from './support/manual-clock.js';

/** Store health (issue 8 part 5) in virtual time: write failures, the recovery probe, the data dir watch. */
describe('StoreHealth', () => {
  let base: string;
  let lines: any[];
  let clock: ManualClock;
  let metrics: Metrics;
  let health: StoreHealth | undefined;
  const log = () => createLogger('info', new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } }));
  const make = (dataDir: string) => (health = new StoreHealth({ dataDir, log: log(), metrics, clock }));
  const gauge = async () => (await metrics.storeDurable.get()).values[0].value;
  const flushLog = () => new Promise((r) => setImmediate(r));

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'sb-health-'));
    lines = [];
    clock = new ManualClock();
    metrics = new Metrics({ defaultMetrics: false });
  });
  afterEach(async () => {
    health?.close();
    await rm(base, { recursive: true, force: true });
  });

  const enospc = { path: '/data/inbox/inbox-000001.log', error: Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }), cut: true };

  it('turns undurable at a failed write, logs failures at most once per 10 s, counts every one', async () => {
    const h = make(join(base, 'missing')); // probes fail: the dir does not exist
    expect(h.durable()).toBe(true);
    for (let i = 0; i < 5; i++) h.writeFailed('inbox', enospc);
    expect(h.durable()).toBe(false);
    expect(await gauge()).toBe(0);
    clock.advance(10_000);
    h.writeFailed('inbox', enospc);
    h.writeFailed('devices', { ...enospc, cut: false });
    await flushLog();
    const failures = lines.filter((l) => /store write failed/.test(l.msg));
    expect(failures.map((l) => [l.store, l.code, l.suppressed, l.level])).toEqual([['inbox', 'ENOSPC', 0, 50], ['inbox', 'ENOSPC', 4, 50], ['devices', 'ENOSPC', 0, 50]]);
    const counted = (await metrics.storeWriteFailures.get()).values.map((v) => [v.labels.store, v.labels.cut, v.value]);
    expect(counted).toEqual([['inbox', 'true', 6], ['devices', 'false', 1]]);
  });

  it('probes the data dir while writes fail and turns durable again once a probe write succeeds', async () => {
    const dataDir = join(base, 'later');
    const h = make(dataDir);
    h.writeFailed('devices', enospc);
    clock.advance(1000);
    await vi.waitFor(() => expect(clock.pending).toBe(1)); // the failed probe scheduled the next one
    expect(h.durable()).toBe(false);
    await mkdir(dataDir);
    clock.advance(1000);
    await vi.waitFor(() => expect(h.durable()).toBe(true));
    expect(await gauge()).toBe(1);
    await flushLog();
    expect(lines.find((l) => l.msg === 'store writable again')).toMatchObject({ failures: 1 });
  });

  it('notices a deleted data dir within one watch interval: undurable for good, one error line', async () => {
    const dataDir = join(base, 'data');
    await mkdir(dataDir);
    const lock = await DataDirLock.acquire(dataDir);
    const h = make(dataDir);
    h.watch(lock);
    clock.advance(1000);
    await vi.waitFor(() => expect(clock.pending).toBe(1));
    expect(h.durable()).toBe(true);
    await rm(dataDir, { recursive: true });
    clock.advance(1000);
    await vi.waitFor(() => expect(h.durable()).toBe(false));
    clock.advance(60_000);
    await flushLog();
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0].msg).toContain(`data dir ${dataDir} is gone (ENOENT)`);
    expect(h.reason()).toContain('is gone');
  });

  it('notices a data dir replaced by another directory at the same path', async () => {
    const dataDir = join(base, 'data');
    await mkdir(dataDir);
    const lock = await DataDirLock.acquire(dataDir);
    const h = make(dataDir);
    h.watch(lock);
    await rm(dataDir, { recursive: true });
    await mkdir(dataDir);
    clock.advance(1000);
    await vi.waitFor(() => expect(h.durable()).toBe(false));
    // The new directory may reuse the old inode number; it has no lock file of ours either way.
    expect(h.reason()).toMatch(/data dir .* was replaced|lock file .* is gone/);
  });

  it('logs replay damage at error with the file, offsets and bytes skipped, and counts it', async () => {
    const h = make(base);
    h.damaged('inbox', '/d/inbox-000003.log', { records: 9, validBytes: 900, discardedBytes: 130, damage: [{ offset: 100, bytes: 100 }], tornTailBytes: 30, keptAs: '/d/inbox-000003.log.damaged-x' });
    await flushLog();
    expect(lines.find((l) => l.level === 50)).toMatchObject({ store: 'inbox', file: '/d/inbox-000003.log', damage: [{ offset: 100, bytesSkipped: 100 }], keptAs: '/d/inbox-000003.log.damaged-x' });
    expect(lines.find((l) => l.level === 40)).toMatchObject({ offset: 900, bytesSkipped: 30 });
    expect((await metrics.storeDamage.get()).values.map((v) => [v.labels.kind, v.value])).toEqual([['corrupt', 1], ['torn_tail', 1]]);
    expect((await metrics.storeDamagedBytes.get()).values[0].value).toBe(130);
  });
});
