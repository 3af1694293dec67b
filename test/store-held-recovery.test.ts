import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WriteFailure } from '../store/append-log.js';
import { FileHeldStore, HELD_RECOVERY_INTERVAL_MS } from '../store/file-held-store.js';

/**
 * The embedded held store after a write failed for good (a failed fdatasync whose bytes could not be cut off): the
 * log is replaced by a snapshot of memory (README "Durability"), and that rewrite itself may meet a failing disk.
 */

/** The directory sync after the snapshot's rename fails while this is set (the rest of append-log is real). */
const dirSync = vi.hoisted(() => ({ fail: false }));
vi.mock('../store/append-log.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../store/append-log.js')>();
  return {
    ...real,
    syncDirectory: async (dir: string) => {
      if (dirSync.fail) throw Object.assign(new Error(`EIO: i/o error, fsync '${dir}'`), { code: 'EIO' });
      return real.syncDirectory(dir);
    },
  };
});

const NOW = 1_800_000_000_000;
let dir: string;
const opened: FileHeldStore[] = [];
const open = async (opts = {}) => opened[opened.push(await FileHeldStore.open(dir, opts)) - 1];
afterEach(async () => {
  dirSync.fail = false;
  for (const s of opened.splice(0)) await s.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

/** A disk whose fdatasync fails while `broken`, closing the handle first so the cut (ftruncate + fsync) fails too. */
function failingDisk() {
  const disk = { broken: false, failures: [] as WriteFailure[] };
  const options = {
    datasync: async (file: { datasync(): Promise<void>; close(): Promise<void> }) => {
      if (!disk.broken) return file.datasync();
      await file.close();
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    },
    onWriteFailure: (f: WriteFailure) => disk.failures.push(f),
  };
  return { disk, options };
}

const held = (id: string, i: number, to = 'u') => ({ msg: { id, to, text: `t-${id}`, acceptedAt: NOW + i }, expiresAt: NOW + 60_000 });
const ids = async (store: FileHeldStore, user: string) => (await store.list(user, NOW)).map((h) => [h.msg.id, h.msg.text]);

describe('FileHeldStore recovery from a log that failed for good', () => {
  it('replaces a log that failed for good (its tail could not be cut off) by a snapshot of memory, at most once a second', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    let now = NOW;
    const { disk, options } = failingDisk();
    const failures = disk.failures;
    const store = await open({ ...options, now: () => now });
    await store.hold('u', held('a', 0));
    await store.hold('v', held('v1', 0));
    await store.drop('v', ['v1']);
    disk.broken = true;
    await expect(store.hold('u', held('b', 1))).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures.map((f) => [f.path, f.cut])).toEqual([[join(dir, 'held.log'), false]]);
    // The next write tries a snapshot at once; the disk still fails it, so the log stays failed.
    await expect(store.hold('u', held('c', 2))).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures.map((f) => [f.path, f.cut])).toEqual([[join(dir, 'held.log'), false], [join(dir, 'held.log.tmp'), false]]);
    // Within the second: refused without another attempt.
    disk.broken = false;
    now += HELD_RECOVERY_INTERVAL_MS - 1;
    await expect(store.hold('u', held('d', 3))).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures).toHaveLength(2);
    // A second after the last attempt, with the disk well: the snapshot replaces the log and the hold is written.
    now += 1;
    await store.hold('u', held('e', 4));
    await store.hold('u', held('f', 5));
    expect((await store.list('u', NOW)).map((h) => [h.msg.id, h.msg.text])).toEqual([['a', 't-a'], ['e', 't-e'], ['f', 't-f']]);
    expect(await store.count('v', NOW)).toBe(0);
    await store.close();
    const again = await open();
    expect((await again.list('u', NOW)).map((h) => [h.msg.id, h.msg.text])).toEqual([['a', 't-a'], ['e', 't-e'], ['f', 't-f']]);
    expect(await again.count('v', NOW)).toBe(0);
  });

  it('survives a snapshot that fails while it reads many held messages back (no unhandled rejection), then recovers', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    let now = NOW;
    const { disk, options } = failingDisk();
    const store = await open({ ...options, now: () => now });
    for (let i = 0; i < 200; i++) await store.hold('u', held(`m${i}`, i)); // durable: read back from the file by a snapshot
    disk.broken = true;
    await expect(store.hold('u', held('x', 300))).rejects.toMatchObject({ code: 'store_failed' });
    // The snapshot's first batches fail while it is still reading messages back for the later ones.
    await expect(store.hold('u', held('y', 301))).rejects.toMatchObject({ code: 'store_failed' });
    expect(disk.failures.some((f) => f.path.endsWith('held.log.tmp'))).toBe(true);
    disk.broken = false;
    now += HELD_RECOVERY_INTERVAL_MS;
    await store.hold('u', held('z', 302));
    const expected = [...Array.from({ length: 200 }, (_, i) => [`m${i}`, `t-m${i}`]), ['z', 't-z']];
    expect(await ids(store, 'u')).toEqual(expected);
    await store.close();
    expect(await ids(await open(), 'u')).toEqual(expected);
  });

  it('keeps reading the right records when the directory sync after the rename fails (the snapshot is the log)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const { disk, options } = failingDisk();
    const store = await open(options);
    // Records of equal size, so a message read at a stale offset would come back as another user's.
    await store.hold('u', held('a1', 0));
    await store.hold('w', held('w1', 1, 'w'));
    await store.hold('u', held('a2', 2));
    await store.drop('u', ['a1']);
    disk.broken = true;
    await expect(store.hold('u', held('d1', 3))).rejects.toMatchObject({ code: 'store_failed' });
    disk.broken = false;
    dirSync.fail = true;
    await store.hold('u', held('a3', 4)); // recovery: rename done, its directory sync failed
    dirSync.fail = false;
    expect(disk.failures.map((f) => [f.path, f.cut])).toEqual([[join(dir, 'held.log'), false], [join(dir, 'held.log'), true]]);
    expect(await ids(store, 'u')).toEqual([['a2', 't-a2'], ['a3', 't-a3']]);
    expect(await ids(store, 'w')).toEqual([['w1', 't-w1']]);
    await store.hold('w', held('w2', 5, 'w'));
    await store.close();
    const again = await open();
    expect(await ids(again, 'u')).toEqual([['a2', 't-a2'], ['a3', 't-a3']]);
    expect(await ids(again, 'w')).toEqual([['w1', 't-w1'], ['w2', 't-w2']]);
  });
});

describe('FileHeldStore compaction meeting a failed write', () => {
  it('does not copy a hold still waiting for its own write into the snapshot: refused, it stays gone after a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    // Each log file gets its own handle: the first the log, the second the snapshot, the third the log after the
    // rename. Only the third fails its fdatasync (the cut then succeeds): the write made during the compaction.
    const handles: unknown[] = [];
    const failures: WriteFailure[] = [];
    const store = await open({
      compactMinBytes: 1,
      onWriteFailure: (f: WriteFailure) => failures.push(f),
      datasync: async (file: { datasync(): Promise<void> }) => {
        if (!handles.includes(file)) handles.push(file);
        if (handles.indexOf(file) === 2) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        return file.datasync();
      },
    });
    await store.hold('u', held('a', 0));
    await store.hold('w', held('w1', 1, 'w'));
    await store.hold('x', { msg: { id: 'big', to: 'x', text: 'x'.repeat(2000), acceptedAt: NOW }, expiresAt: NOW + 60_000 });
    const dropped = store.drop('x', ['big']); // the log is now mostly garbage: this write starts a compaction
    const late = store.hold('w', held('w2', 2, 'w')); // waits for the compaction, then for its own write, which fails
    await dropped;
    await expect(late).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures.map((f) => [f.path, f.cut])).toEqual([[join(dir, 'held.log'), true]]);
    expect(await ids(store, 'w')).toEqual([['w1', 't-w1']]);
    await store.close();
    const again = await open();
    expect(await ids(again, 'w')).toEqual([['w1', 't-w1']]);
    expect(await ids(again, 'u')).toEqual([['a', 't-a']]);
    expect(await again.count('x', NOW)).toBe(0);
  });
});
