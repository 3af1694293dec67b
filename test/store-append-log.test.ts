import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppendLog } from '../store/append-log.js';

type Rec = { n: number; s?: string };

async function replayAll(path: string): Promise<{ records: Rec[]; discardedBytes: number; validBytes: number }> {
  const records: Rec[] = [];
  const { validBytes, discardedBytes } = await AppendLog.replay<Rec>(path, (r) => records.push(r));
  return { records, validBytes, discardedBytes };
}

describe('AppendLog', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-log-'));
    path = join(dir, 'test.log');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('replays records in append order', async () => {
    const log = new AppendLog<Rec>(path);
    for (let n = 0; n < 5; n++) await log.append({ n, s: 'x'.repeat(n * 100) });
    await log.close();
    const { records, discardedBytes, validBytes } = await replayAll(path);
    expect(records.map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
    expect(discardedBytes).toBe(0);
    expect(validBytes).toBe((await stat(path)).size);
    expect(validBytes).toBe(log.bytes);
  });

  it('writes a lazy record with the next synced batch, costing no fdatasync of its own', async () => {
    const log = new AppendLog<Rec>(path);
    await log.append({ n: 0 });
    log.appendLazy({ n: 1 });
    log.appendLazy({ n: 2 });
    await log.append({ n: 3 });
    expect(log.stats.syncs).toBe(2);
    await log.close();
    expect((await replayAll(path)).records.map((r) => r.n)).toEqual([0, 1, 2, 3]);
  });

  it('flushes a lone lazy record on close', async () => {
    const log = new AppendLog<Rec>(path);
    log.appendLazy({ n: 7 });
    await log.close();
    expect((await replayAll(path)).records).toEqual([{ n: 7 }]);
  });

  it('group-commits concurrent appends into few write+fdatasync rounds', async () => {
    const log = new AppendLog<Rec>(path);
    await Promise.all(Array.from({ length: 1000 }, (_, n) => log.append({ n })));
    expect(log.stats.records).toBe(1000);
    expect(log.stats.syncs).toBe(1); // appends made in one synchronous run share the first write+fdatasync
    await log.close();
    expect((await replayAll(path)).records.map((r) => r.n)).toEqual(Array.from({ length: 1000 }, (_, n) => n));
  });

  it('syncs once per append when each waits for the previous one', async () => {
    const log = new AppendLog<Rec>(path);
    for (let n = 0; n < 10; n++) await log.append({ n });
    expect(log.stats).toEqual({ records: 10, syncs: 10 });
    await log.close();
  });

  it('stops at a torn tail, truncates it, and appends cleanly after it', async () => {
    const log = new AppendLog<Rec>(path);
    for (let n = 0; n < 3; n++) await log.append({ n, s: 'payload' });
    await log.close();
    const full = await readFile(path);
    await writeFile(path, full.subarray(0, full.length - 3)); // a write cut short by the crash

    const first = await replayAll(path);
    expect(first.records.map((r) => r.n)).toEqual([0, 1]);
    expect(first.discardedBytes).toBeGreaterThan(0);
    expect((await stat(path)).size).toBe(first.validBytes);

    const again = new AppendLog<Rec>(path, { startBytes: first.validBytes });
    await again.append({ n: 9 });
    await again.close();
    expect((await replayAll(path)).records.map((r) => r.n)).toEqual([0, 1, 9]);
  });

  it('stops at a record whose crc does not match', async () => {
    const log = new AppendLog<Rec>(path);
    for (let n = 0; n < 3; n++) await log.append({ n, s: 'payload' });
    await log.close();
    const data = await readFile(path);
    const frame = data.length / 3;
    data[frame + 8 + 2] ^= 0xff; // a body byte of the second record
    await writeFile(path, data);
    const { records, validBytes } = await replayAll(path);
    expect(records.map((r) => r.n)).toEqual([0]);
    expect(validBytes).toBe(frame);
  });

  it('stops at a garbage header (an absurd length) and at a header without its body', async () => {
    const log = new AppendLog<Rec>(path);
    await log.append({ n: 1 });
    await log.close();
    await appendFile(path, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5]));
    expect((await replayAll(path)).records).toEqual([{ n: 1 }]);
    await appendFile(path, Buffer.from([1, 0]));
    expect((await replayAll(path)).records).toEqual([{ n: 1 }]);
  });

  it('treats a missing file as empty', async () => {
    expect(await replayAll(join(dir, 'missing.log'))).toEqual({ records: [], validBytes: 0, discardedBytes: 0 });
  });

  it('rejects every append of a batch whose fdatasync failed, and all later ones', async () => {
    let failSync = false;
    const log = new AppendLog<Rec>(path, {
      datasync: async (file) => {
        if (failSync) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        await file.datasync();
      },
    });
    await log.append({ n: 0 });
    failSync = true;
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, n) => log.append({ n: n + 1 })));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(log.failed).toBe(true);
    await expect(log.append({ n: 99 })).rejects.toThrow(/EIO/);
    expect(log.stats).toEqual({ records: 1, syncs: 1 });
    await log.close();
  });

  it('rejects appends after close, and close waits for queued appends to be synced', async () => {
    const log = new AppendLog<Rec>(path);
    const queued = Array.from({ length: 50 }, (_, n) => log.append({ n }));
    await log.close();
    await Promise.all(queued);
    await expect(log.append({ n: 51 })).rejects.toThrow(/closed/);
    expect((await replayAll(path)).records).toHaveLength(50);
  });
});
