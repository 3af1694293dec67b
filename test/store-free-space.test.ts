import { Writable } from 'node:stream';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { FreeSpaceFloor, systemStatFs, type StatFs } from '../store/free-space.js';
import { ManualClock } from './support/manual-clock.js';

/** The data dir's free-space floor in virtual time, with injected statfs figures: readiness sees a nearly full disk. */
describe('FreeSpaceFloor', () => {
  const MiB = 1024 * 1024;
  const FLOOR = 64 * MiB;
  let lines: any[];
  let clock: ManualClock;
  let metrics: Metrics;
  /** What the injected statfs answers next: free bytes (4 KiB blocks), or an error to throw. */
  let next: number | Error;
  let reads: number;
  const statfs: StatFs = async () => {
    reads++;
    if (next instanceof Error) throw next;
    return { bavail: next / 4096, bsize: 4096 };
  };
  const log = () => createLogger('info', new Writable({ write(c, _e, cb) { lines.push(JSON.parse(String(c))); cb(); } }));
  const make = () => new FreeSpaceFloor({ dataDir: '/data', minFreeBytes: FLOOR, statfs, clock, log: log(), metrics });
  const freeGauge = async () => (await metrics.dataDirFreeBytes.get()).values.map((v) => [v.labels.dir, v.value]);
  const flushLog = () => new Promise((r) => setImmediate(r));
  /** Fires the next read and waits until it ran and scheduled the one after. */
  const tick = async () => {
    const before = reads;
    clock.advance(1000);
    await vi.waitFor(() => expect(reads).toBe(before + 1));
    await vi.waitFor(() => expect(clock.pending).toBe(1));
  };

  beforeEach(() => {
    lines = [];
    clock = new ManualClock();
    metrics = new Metrics({ defaultMetrics: false });
    next = 10 * 1024 * MiB;
    reads = 0;
  });

  it('reads at start and every second: low below the floor (warn once), ready again above it (info once)', async () => {
    const f = make();
    await f.start();
    expect(f.low()).toBe(false);
    expect(await freeGauge()).toEqual([['/data', 10 * 1024 * MiB]]);

    next = FLOOR - 4096;
    await tick();
    expect(f.low()).toBe(true);
    expect(await freeGauge()).toEqual([['/data', FLOOR - 4096]]);
    await tick(); // still below: no second line
    expect(f.low()).toBe(true);

    next = FLOOR; // at the floor is enough
    await tick();
    expect(f.low()).toBe(false);
    await tick();
    await flushLog();
    expect(lines.map((l) => [l.level, l.msg, l.freeBytes])).toEqual([
      [40, 'data dir free space below the floor: /readyz answers 503 unready; accepts go on while writes succeed', FLOOR - 4096],
      [30, 'data dir free space above the floor again: ready', FLOOR],
    ]);
    expect(lines[0]).toMatchObject({ dataDir: '/data', minFreeBytes: FLOOR });
    f.close();
  });

  it('below the floor already at start: low after the first read', async () => {
    next = MiB;
    const f = make();
    await f.start();
    expect(f.low()).toBe(true);
    f.close();
  });

  it('a statfs error is logged once per run of errors and does not turn a low node ready', async () => {
    const f = make();
    await f.start();
    next = FLOOR / 2;
    await tick();
    expect(f.low()).toBe(true);

    next = Object.assign(new Error('EIO: i/o error, statfs'), { code: 'EIO' });
    await tick();
    await tick();
    expect(f.low()).toBe(true); // no figures: the last answer stands
    expect(await freeGauge()).toEqual([['/data', FLOOR / 2]]);

    next = FLOOR / 2;
    await tick();
    expect(f.low()).toBe(true);
    next = FLOOR * 2;
    await tick();
    expect(f.low()).toBe(false);
    await flushLog();
    const failed = lines.filter((l) => l.msg.startsWith('cannot read'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 40, code: 'EIO', dataDir: '/data' });
    expect(lines.filter((l) => l.msg.startsWith('the data dir\'s free space can be read again'))).toHaveLength(1);
    f.close();
  });

  it('a statfs error does not turn a ready node low either', async () => {
    next = new Error('ENOSYS');
    const f = make();
    await f.start();
    expect(f.low()).toBe(false);
    await tick();
    expect(f.low()).toBe(false);
    f.close();
  });

  it('stops on close: no timer left, a read in flight is dropped', async () => {
    const f = make();
    await f.start();
    expect(clock.pending).toBe(1);
    let answer!: (v: { bavail: number; bsize: number }) => void;
    const slow = new FreeSpaceFloor({ dataDir: '/data', minFreeBytes: FLOOR, statfs: () => new Promise((r) => (answer = r)), clock, log: log(), metrics: new Metrics({ defaultMetrics: false }) });
    const started = slow.start();
    slow.close();
    answer({ bavail: 1, bsize: 4096 });
    await started;
    expect(slow.low()).toBe(false);
    f.close();
    expect(clock.pending).toBe(0);
    clock.advance(10_000);
    expect(reads).toBe(1);
  });

  it('the system statfs reads real figures on this Node (fs.promises.statfs)', async () => {
    const s = await systemStatFs(process.cwd());
    expect(s.bsize).toBeGreaterThan(0);
    expect(s.bavail).toBeGreaterThanOrEqual(0);
  });

  it('its timer does not keep the process alive (unref on the system clock)', async () => {
    const unref = vi.fn();
    const real = { now: () => 0, setTimeout: () => ({ unref }) as never, clearTimeout: () => undefined };
    const f = new FreeSpaceFloor({ dataDir: '/data', minFreeBytes: FLOOR, statfs, clock: real, log: log(), metrics });
    await f.start();
    expect(unref).toHaveBeenCalledTimes(1);
    f.close();
  });
});
