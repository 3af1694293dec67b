import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ReplayReport } from '../store/append-log.js';
import { FileDeviceRegistry } from '../store/file-device-registry.js';

describe('FileDeviceRegistry', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-devices-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('stamps updatedAt from the injected clock, on put and on clearToken', async () => {
    let clock = 1000;
    const registry = await FileDeviceRegistry.open(dir, { now: () => clock });
    expect((await registry.put('u', 'd', { os: 'ios', token: 't' })).updatedAt).toBe(1000);
    clock = 2000;
    await registry.clearToken('u', 'd', 't');
    expect(await registry.list('u')).toEqual([{ device: 'd', os: 'ios', updatedAt: 2000 }]);
    await registry.close();
    const again = await FileDeviceRegistry.open(dir);
    expect(await again.list('u')).toEqual([{ device: 'd', os: 'ios', updatedAt: 2000 }]);
    await again.close();
  });

  it('compacts a log much larger than the live data into a snapshot, losing nothing', async () => {
    const registry = await FileDeviceRegistry.open(dir, { compactMinBytes: 16 * 1024 });
    // Re-registering the same 10 devices over and over: the log grows, the live data does not.
    // Rounds of 10 concurrent puts, so some arrive while a compaction runs and wait for the new log.
    for (let round = 0; round < 300; round++) {
      const writes = Array.from({ length: 10 }, (_, d) => registry.put('u', `dev${d}`, { os: 'android', token: `tok-${round}-${d}` }));
      await Promise.all(writes);
    }
    await registry.remove('u', 'dev9');
    await registry.close();

    const size = (await stat(join(dir, 'devices.log'))).size;
    expect(size).toBeLessThan(20 * 1024); // 3000 puts of ~80 bytes would be ~240 KiB without compaction
    expect((await readdir(dir)).sort()).toEqual(['devices.log']);
    const again = await FileDeviceRegistry.open(dir);
    const devices = (await again.list('u')).sort((a, b) => a.device.localeCompare(b.device));
    expect(devices.map((r) => [r.device, r.token])).toEqual(Array.from({ length: 9 }, (_, d) => [`dev${d}`, `tok-299-${d}`]));
    await again.close();
  });

  it('ignores a snapshot temp file left by a compaction cut short', async () => {
    const registry = await FileDeviceRegistry.open(dir);
    await registry.put('u', 'd', { os: 'web', token: 'sub' });
    await registry.close();
    await writeFile(join(dir, 'devices.log.tmp'), 'half a snapshot');
    const again = await FileDeviceRegistry.open(dir);
    expect((await again.list('u')).map((r) => r.token)).toEqual(['sub']);
    expect(await readdir(dir)).toEqual(['devices.log']);
    await again.close();
  });

  it('refuses writes after close', async () => {
    const registry = await FileDeviceRegistry.open(dir);
    await registry.close();
    await expect(registry.put('u', 'd', { os: 'ios', token: 't' })).rejects.toMatchObject({ code: 'shutting_down' });
  });

  it('undoes a change whose write failed, and takes writes again once the disk does (ENOSPC, then freed)', async () => {
    let full = false;
    const failures: boolean[] = [];
    const registry = await FileDeviceRegistry.open(dir, {
      datasync: async (file) => {
        if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        await file.datasync();
      },
      onWriteFailure: (f) => failures.push(f.cut),
    });
    await registry.put('u', 'kept', { os: 'ios', token: 'a'.repeat(64) });
    full = true;
    await expect(registry.put('u', 'new', { os: 'android', token: 'fcm-new' })).rejects.toMatchObject({ code: 'store_failed', status: 503 });
    await expect(registry.put('u', 'kept', { os: 'ios', token: 'b'.repeat(64) })).rejects.toMatchObject({ code: 'store_failed' });
    await expect(registry.remove('u', 'kept')).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures).toEqual([true, true, true]);
    // Nothing answered 503 is in effect: not in memory now, not on disk after a restart.
    expect((await registry.list('u')).map((r) => [r.device, r.token])).toEqual([['kept', 'a'.repeat(64)]]);
    full = false;
    await registry.put('u', 'after', { os: 'android', token: 'fcm-after' });
    await registry.close();
    const again = await FileDeviceRegistry.open(dir);
    expect((await again.list('u')).map((r) => [r.device, r.token]).sort()).toEqual([['after', 'fcm-after'], ['kept', 'a'.repeat(64)]]);
    await again.close();
  });

  it('keeps a change refused while a compaction ran out of the snapshot: answered 503, it is gone after a restart too', async () => {
    // One device registered over and over: a log of garbage, one byte short of the compaction threshold.
    const first = await FileDeviceRegistry.open(dir, { compactMinBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 0; i < 20; i++) await first.put('u', 'kept', { os: 'ios', token: `${'a'.repeat(60)}${i}` });
    await first.close();
    const logBytes = (await stat(join(dir, 'devices.log'))).size;
    let failNext = false;
    const failures: boolean[] = [];
    const registry = await FileDeviceRegistry.open(dir, {
      compactMinBytes: logBytes + 1,
      datasync: async (file) => {
        if (failNext) {
          failNext = false;
          throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        }
        await file.datasync();
      },
      onWriteFailure: (f) => failures.push(f.cut),
    });
    // This write starts a compaction while its own record is still on its way to the old log, and that write fails.
    failNext = true;
    await expect(registry.put('u', 'new', { os: 'android', token: 'fcm-new' })).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures).toEqual([true]);
    await registry.put('u', 'after', { os: 'android', token: 'fcm-after' });
    const expected = [['after', 'fcm-after'], ['kept', `${'a'.repeat(60)}19`]];
    expect((await registry.list('u')).map((r) => [r.device, r.token]).sort()).toEqual(expected);
    await registry.close();
    const again = await FileDeviceRegistry.open(dir);
    expect((await again.list('u')).map((r) => [r.device, r.token]).sort()).toEqual(expected);
    await again.close();
  });

  it('loses only the damaged record when devices.log is corrupted in the middle, and reports it', async () => {
    const registry = await FileDeviceRegistry.open(dir);
    for (let i = 0; i < 10; i++) await registry.put(`u${i}`, 'd', { os: 'android', token: `token-${i}-${'x'.repeat(40)}` });
    await registry.close();
    const path = join(dir, 'devices.log');
    const data = await readFile(path);
    const frame = data.length / 10;
    for (let k = 0; k < 4; k++) data[4 * frame + 20 + k] ^= 0x5a; // 4 bytes of record 4
    await writeFile(path, data);
    const reports: ReplayReport[] = [];
    const again = await FileDeviceRegistry.open(dir, { onDamage: (_file, r) => reports.push(r) });
    for (let i = 0; i < 10; i++) expect((await again.list(`u${i}`)).length, `u${i}`).toBe(i === 4 ? 0 : 1);
    expect(reports).toHaveLength(1);
    expect(reports[0].damage).toEqual([{ offset: 4 * frame, bytes: frame }]);
    expect((await readdir(dir)).filter((f) => f.startsWith('devices.log.damaged-'))).toHaveLength(1);
    await again.put('u4', 'd', { os: 'android', token: 'token-4-again' }); // appends after the repaired file
    await again.close();
    const third = await FileDeviceRegistry.open(dir, { onDamage: () => expect.fail('repaired file reported again') });
    expect((await third.list('u4'))[0].token).toBe('token-4-again');
    await third.close();
  });
});
