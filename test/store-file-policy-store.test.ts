import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilePolicyStore } from '../store/file-policy-store.js';

describe('FilePolicyStore when the disk fails', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-policies-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('undoes a put answered 503 (in memory and on disk) and takes puts again once the disk does', async () => {
    let full = false;
    const failures: boolean[] = [];
    const store = await FilePolicyStore.open(dir, {
      datasync: async (file) => {
        if (full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        await file.datasync();
      },
      onWriteFailure: (f) => failures.push(f.cut),
    });
    await store.put('kept', { mobile: 'never' });
    full = true;
    await expect(store.put('kept', { mobile: 'always' })).rejects.toMatchObject({ code: 'store_failed' });
    await expect(store.put('fresh', { mobile: 'always' })).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures).toEqual([true, true]);
    expect(await store.get('kept')).toEqual({ mobile: 'never' });
    expect(await store.get('fresh')).toBeUndefined();
    full = false;
    await store.put('after', { mobile: 'when_away' });
    await store.close();
    const again = await FilePolicyStore.open(dir);
    expect([await again.get('kept'), await again.get('fresh'), await again.get('after')]).toEqual([{ mobile: 'never' }, undefined, { mobile: 'when_away' }]);
    await again.close();
  });
});
