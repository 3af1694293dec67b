import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirLock, DataDirLockedError, LOCK_FILE } from '../store/data-dir-lock.js';

describe('DataDirLock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-lock-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('writes the holder pid, refuses a second holder naming it, and is free again after release', async () => {
    const lock = await DataDirLock.acquire(dir);
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    // Another live process of this machine (our parent) holds it.
    await rm(join(dir, LOCK_FILE));
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid }));
    const refused = await DataDirLock.acquire(dir).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as DataDirLockedError).pid).toBe(process.ppid);
    expect((refused as Error).message).toBe(`data dir ${dir} is in use by pid ${process.ppid} (lock file ${join(dir, LOCK_FILE)})`);
    await lock.release(); // the file is no longer ours (replaced above): left alone
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.ppid);
  });

  it('takes over a lock whose process is gone (the holder was killed)', async () => {
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 4_000_000 }));
    const lock = await DataDirLock.acquire(dir, { isAlive: (pid) => pid !== 4_000_000 });
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    expect(await lock.check()).toBeUndefined();
    await lock.release();
    await expect(readFile(join(dir, LOCK_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes over a lock holding its own pid (a container restarted with the same pid) or no pid at all', async () => {
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid }));
    await (await DataDirLock.acquire(dir)).release();
    await writeFile(join(dir, LOCK_FILE), '');
    await (await DataDirLock.acquire(dir)).release();
  });

  it('reports a removed or replaced lock file', async () => {
    const lock = await DataDirLock.acquire(dir);
    await writeFile(join(dir, 'other'), 'keeps the freed inode number from being reused at once');
    await rm(join(dir, LOCK_FILE));
    expect(await lock.check()).toContain('is gone');
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid }));
    expect(await lock.check()).toMatch(/was replaced|is gone/);
  });
});
