import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
});
