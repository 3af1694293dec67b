import { mkdtemp, rm, stat, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileHeldStore } from '../store/file-held-store.js';

/** The embedded held store's own mechanics: offsets across compaction, expired messages compacted away, a torn tail. */

const NOW = 1_800_000_000_000;
let dir: string;
const opened: FileHeldStore[] = [];
const open = async (opts = {}) => opened[opened.push(await FileHeldStore.open(dir, opts)) - 1];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe('FileHeldStore', () => {
  it('rewrites the log once it outgrows the live records; messages read back whole from their new offsets', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const store = await open({ compactMinBytes: 16 * 1024, now: () => NOW });
    const text = 'x'.repeat(200);
    for (let i = 0; i < 300; i++) await store.hold(`u${i % 3}`, { msg: { id: `m${i}`, to: `u${i % 3}`, text, acceptedAt: NOW + i }, expiresAt: i % 10 === 0 ? NOW - 1 : NOW + 60_000 });
    for (let i = 0; i < 300; i++) if (i % 5 !== 0) await store.drop(`u${i % 3}`, [`m${i}`]);
    await store.hold('u0', { msg: { id: 'after', to: 'u0', text, acceptedAt: NOW + 1000 }, expiresAt: NOW + 60_000 });
    const size = (await stat(join(dir, 'held.log'))).size;
    expect(size).toBeLessThan(300 * 250);
    const expected = (u: number) => Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 3 === u && i % 5 === 0 && i % 10 !== 0).map((i) => `m${i}`);
    expect((await store.list('u0', NOW)).map((h) => h.msg.id)).toEqual([...expected(0), 'after']);
    expect((await store.list('u1', NOW)).map((h) => h.msg.text)).toEqual(expected(1).map(() => text));
    await store.close();
    const again = await open();
    expect((await again.list('u1', NOW)).map((h) => h.msg.id)).toEqual(expected(1));
    expect(again.heldTotal).toBe(expected(0).length + 1 + expected(1).length + expected(2).length);
  });

  it('a torn tail after kill -9 costs only the unsynced record', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const store = await open();
    await store.hold('u', { msg: { id: 'a', to: 'u', acceptedAt: NOW }, expiresAt: NOW + 1000 });
    await store.close();
    await appendFile(join(dir, 'held.log'), Buffer.from([40, 0, 0, 0, 1, 2, 3]));
    const again = await open();
    expect((await again.list('u', NOW)).map((h) => h.msg.id)).toEqual(['a']);
    await again.hold('u', { msg: { id: 'b', to: 'u', acceptedAt: NOW + 1 }, expiresAt: NOW + 1000 });
    await again.close();
    expect((await (await open()).list('u', NOW)).map((h) => h.msg.id)).toEqual(['a', 'b']);
  });
});
