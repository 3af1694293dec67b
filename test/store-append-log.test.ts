import { appendFile, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppendLog, MAX_RECORD_BYTES, encodeFrame, type ReplayReport, type SyncReport } from '../store/append-log.js';

type Rec = { n: number; s?: string };

async function replayAll(path: string): Promise<Omit<ReplayReport, 'records'> & { records: Rec[] }> {
  const records: Rec[] = [];
  const report = await AppendLog.replay<Rec>(path, (r) => records.push(r), { now: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
  return { ...report, records };
}

/** Five records of equal frame size; returns that size. */
async function fiveRecords(path: string): Promise<number> {
  const log = new AppendLog<Rec>(path);
  for (let n = 0; n < 5; n++) await log.append({ n, s: 'payload-payload' });
  await log.close();
  return (await stat(path)).size / 5;
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

  it('never writes lazy records queued during a sync on their own: they wait for the next synced append', async () => {
    const log = new AppendLog<Rec>(path);
    const first = log.append({ n: 0 });
    await Promise.resolve(); // the first write is under way
    log.appendLazy({ n: 1 }); // e.g. a settle made while that write syncs
    await first;
    await new Promise((r) => setImmediate(r));
    expect(log.stats.syncs).toBe(1); // no round for the lazy record alone
    await log.append({ n: 2 });
    expect(log.stats.syncs).toBe(2);
    await log.close();
    expect((await replayAll(path)).records.map((r) => r.n)).toEqual([0, 1, 2]);
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

  it('reports each durable batch once (records, bytes, wall ms), a lazy record riding along included, and no failed one', async () => {
    const reports: SyncReport[] = [];
    let failSync = false;
    const log = new AppendLog<Rec>(path, {
      datasync: async (file) => {
        if (failSync) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        await new Promise((r) => setTimeout(r, 5)); // a slow disk: the report's wall time must include the sync
        await file.datasync();
      },
      onSynced: (s) => reports.push(s),
    });
    log.appendLazy({ n: 0 });
    await Promise.all([log.append({ n: 1 }), log.append({ n: 2 })]);
    await log.append({ n: 3 });
    failSync = true;
    await expect(log.append({ n: 4 })).rejects.toThrow('EIO');
    expect(reports.map((r) => r.records)).toEqual([3, 1]);
    expect(reports.every((r) => r.path === path && r.ms >= 4)).toBe(true);
    expect(reports[0].bytes + reports[1].bytes).toBe((await stat(path)).size);
    expect(log.stats).toEqual({ records: 4, syncs: 2 });
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

  it('skips a record whose crc does not match and replays the ones after it; keeps the damaged file aside', async () => {
    const frame = await fiveRecords(path);
    const data = await readFile(path);
    data.writeUInt32LE((data.readUInt32LE(frame + 8 + 4) ^ 0xffffffff) >>> 0, frame + 8 + 4); // 4 body bytes of record 1
    await writeFile(path, data);
    const damaged = Buffer.from(data);

    const first = await replayAll(path);
    expect(first.records.map((r) => r.n)).toEqual([0, 2, 3, 4]);
    expect(first.damage).toEqual([{ offset: frame, bytes: frame }]);
    expect(first.tornTailBytes).toBe(0);
    expect(first.discardedBytes).toBe(frame);
    expect(first.keptAs).toBe(`${path}.damaged-2026-01-02T03-04-05-000Z`);
    expect(await readFile(first.keptAs!)).toEqual(damaged); // the file as found, for inspection
    expect((await stat(path)).size).toBe(4 * frame); // rewritten without the damage
    const again = await replayAll(path);
    expect(again.records.map((r) => r.n)).toEqual([0, 2, 3, 4]);
    expect(again.damage).toEqual([]);
  });

  it('resyncs past a garbage length in the middle and past several damaged stretches', async () => {
    const frame = await fiveRecords(path);
    const data = await readFile(path);
    data.writeUInt32LE(0x7fffffff, 0); // record 0: an absurd length
    data.writeUInt32LE(frame, 2 * frame); // record 2: a length that fits but is wrong
    await writeFile(path, data);
    const { records, damage } = await replayAll(path);
    expect(records.map((r) => r.n)).toEqual([1, 3, 4]);
    expect(damage).toEqual([{ offset: 0, bytes: frame }, { offset: 2 * frame, bytes: frame }]);
  });

  it('cuts damage with no valid record after it as a torn tail, without keeping a copy', async () => {
    const frame = await fiveRecords(path);
    const data = await readFile(path);
    data[4 * frame + 9] ^= 0xff;
    await writeFile(path, data);
    const r = await replayAll(path);
    expect(r.records.map((x) => x.n)).toEqual([0, 1, 2, 3]);
    expect(r).toMatchObject({ damage: [], tornTailBytes: frame });
    expect(r.keptAs).toBeUndefined();
    expect((await readdir(dir)).sort()).toEqual(['test.log']);
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
    expect(await replayAll(join(dir, 'missing.log'))).toEqual({ records: [], validBytes: 0, discardedBytes: 0, damage: [], tornTailBytes: 0 });
  });

  it('cuts a batch whose fdatasync failed off the file, rejects it, and goes on (disk full, then freed)', async () => {
    let failSync = false;
    const failures: { cut: boolean }[] = [];
    const log = new AppendLog<Rec>(path, {
      datasync: async (file) => {
        if (failSync) throw Object.assign(new Error('ENOSPC: no space left on device, fdatasync'), { code: 'ENOSPC' });
        await file.datasync();
      },
      onWriteFailure: (f) => failures.push({ cut: f.cut }),
    });
    await log.append({ n: 0 });
    const synced = (await stat(path)).size;
    failSync = true;
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, n) => log.append({ n: n + 1 })));
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((f) => f.cut)).toBe(true);
    expect((await stat(path)).size).toBe(synced); // nothing answered "failed" can be replayed
    expect(log.failed).toBe(false);
    expect(log.bytes).toBe(synced);
    failSync = false;
    await log.append({ n: 99 });
    await log.close();
    expect((await replayAll(path)).records.map((r) => r.n)).toEqual([0, 99]);
  });

  it('refuses every later append when the failed bytes cannot be cut off (tail unknown)', async () => {
    const log = new AppendLog<Rec>(path, {
      datasync: async (file) => {
        await file.close(); // the cut (ftruncate on this handle) fails too
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      },
    });
    await expect(log.append({ n: 1 })).rejects.toThrow(/EIO/);
    expect(log.failed).toBe(true);
    await expect(log.append({ n: 2 })).rejects.toThrow(/EIO/);
    expect(log.stats).toEqual({ records: 0, syncs: 0 });
    await log.close().catch(() => undefined);
  });

  it('fails appends to a file deleted under it (data dir removed), cutting them off', async () => {
    const log = new AppendLog<Rec>(path);
    await log.append({ n: 0 });
    await unlink(path);
    await expect(log.append({ n: 1 })).rejects.toThrow(/deleted/);
    await log.close();
  });

  it('sees a file deleted while its batch was being written (the check follows the write)', async () => {
    const log = new AppendLog<Rec>(path, {
      datasync: async (file) => {
        await file.sync();
        await unlink(path); // the data dir goes away between the write and the answer
      },
    });
    await expect(log.append({ n: 0 })).rejects.toThrow(/deleted/);
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

  it('refuses to encode a record over the frame limit replay reads (so it is never written and answered), and writes nothing for it', async () => {
    const big = { n: 1, s: 'x'.repeat(MAX_RECORD_BYTES) };
    expect(() => encodeFrame(big)).toThrow(RangeError);
    expect(() => encodeFrame(big)).toThrow(/over the 16777216-byte limit/);
    const log = new AppendLog<Rec>(path);
    expect(() => log.append(big)).toThrow(RangeError);
    await log.append({ n: 2 });
    await log.close();
    expect((await replayAll(path)).records).toEqual([{ n: 2 }]);
  });
});
