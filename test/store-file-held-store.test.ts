import { mkdtemp, readdir, rm, stat, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, type ReplayReport, type WriteFailure } from '../store/append-log.js';
import { FileHeldStore } from '../store/file-held-store.js';
import { fromRecord, markDelivered, markRead, MAX_UNREAD_IDS, toRecord } from '../store/read-state.js';
import type { ReadState } from '../store/types.js';
import { flipBytes, readFrames } from './support/log-frames.js';

/**
 * The embedded held store's own mechanics: offsets across compaction, expired messages compacted away, a torn tail,
 * damage in the middle and failed writes reported to store health (issue 8 part 3) the way the inbox reports them.
 */

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

  it('reads held messages back from the log through one file handle, however many reads start together', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const first = await open({ now: () => NOW });
    for (let i = 0; i < 20; i++) await first.hold(`u${i}`, { msg: { id: `m${i}`, to: `u${i}`, text: 't', acceptedAt: NOW + i }, expiresAt: NOW + 60_000 });
    await first.close();
    opened.splice(0);
    const store = await open({ now: () => NOW }); // replayed: the messages are read from the log, not memory
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    const lists = await Promise.all(Array.from({ length: 20 }, (_, i) => store.list(`u${i}`, NOW)));
    expect(lists.map((l) => l.map((h) => h.msg.id))).toEqual(Array.from({ length: 20 }, (_, i) => [`m${i}`]));
    expect(await fds()).toBe(before + 1); // before: one handle per read that started before the first open finished
  });

  it("writes one turn's unread marks as one record, before a later read of the same user, and still reads the older one-mark records", async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const store = await open();
    const u1 = await store.reads('u1');
    const u2 = await store.reads('u2');
    for (const [user, s, id] of [['u1', u1, 'a'], ['u1', u1, 'b'], ['u2', u2, 'c']] as const) {
      markDelivered(s, id);
      await store.saveReads(user, s, { delivered: id }, false);
    }
    markRead(u1, ['a']);
    await store.saveReads('u1', u1, { read: ['a'] }, true); // durable: the marks queued before it go first
    await store.close();
    const records = (await readFrames(join(dir, 'held.log'))).map((f) => f.record);
    expect(records).toEqual([{ t: 'unreads', users: ['u1', 'u1', 'u2'], ids: ['a', 'b', 'c'] }, { t: 'read', user: 'u1', ids: ['a'] }]);
    // A log written before marks were batched: one `unread` record per delivery.
    await appendFile(join(dir, 'held.log'), Buffer.concat([encodeFrame({ t: 'unread', user: 'u2', id: 'd' }), encodeFrame({ t: 'unread', user: 'u2', id: 'c' })]));
    const again = await open();
    expect(toRecord(await again.reads('u1'))).toEqual({ unread: ['b'], read: ['a'] });
    expect(toRecord(await again.reads('u2'))).toEqual({ unread: ['c', 'd'], read: [] });
  });

  it('holds(): from memory, only what is held and unexpired', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const store = await open({ now: () => NOW });
    await store.hold('u', { msg: { id: 'live', to: 'u', acceptedAt: NOW }, expiresAt: NOW + 1000 });
    await store.hold('u', { msg: { id: 'old', to: 'u', acceptedAt: NOW - 5000 }, expiresAt: NOW - 1 });
    expect([store.holds('u', 'live', NOW), store.holds('u', 'old', NOW), store.holds('u', 'none', NOW), store.holds('v', 'live', NOW)]).toEqual([true, false, false, false]);
    expect(store.holds('u', 'live', NOW + 1000)).toBe(false);
    await store.drop('u', ['live']);
    expect(store.holds('u', 'live', NOW)).toBe(false);
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

  it('keeps the read state the actor saves, delivery by delivery past the unread cap, and the same after a restart', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const store = await open();
    // The actor's copy, changed by the same rules; each delivery saved lazily, each read durably.
    const actor: ReadState = await store.reads('u');
    for (let i = 0; i < MAX_UNREAD_IDS + 50; i++) {
      if (i % 97 === 0) {
        markRead(actor, [`m${i - 3}`, `m${i + 1}`]);
        await store.saveReads('u', actor, { read: [`m${i - 3}`, `m${i + 1}`] }, true);
      }
      if (markDelivered(actor, `m${i}`)) await store.saveReads('u', actor, { delivered: `m${i}` }, false);
      if (i % 250 === 0) expect(toRecord(await store.reads('u'))).toEqual(toRecord(actor));
    }
    expect(toRecord(await store.reads('u'))).toEqual(toRecord(actor));
    expect(actor.unread.size).toBe(MAX_UNREAD_IDS);
    // One set of ids per user in memory (issue 13): the store keeps the very object the actor changes.
    expect(await store.reads('u')).toBe(actor);
    // A state that does not follow from the store's (never loaded from it) is taken whole, not patched.
    const other: ReadState = fromRecord({ unread: ['x0', 'x1', 'x2'], read: ['r'] });
    await store.saveReads('v', fromRecord({ unread: ['x1'], read: [] }), { delivered: 'x1' }, false);
    await store.saveReads('v', other, { delivered: 'x2' }, true);
    expect(toRecord(await store.reads('v'))).toEqual(toRecord(other));
    await store.close();
    const again = await open();
    expect(toRecord(await again.reads('u'))).toEqual(toRecord(actor));
  });

  it('loses only the damaged hold when held.log is corrupted in the middle, reports it and keeps the file aside', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    const store = await open();
    const ids = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const [i, id] of ids.entries()) await store.hold('u', { msg: { id, to: 'u', text: `text of ${id}`, acceptedAt: NOW + i }, expiresAt: NOW + 60_000 });
    await store.close();
    const log = join(dir, 'held.log');
    const victim = (await readFrames(log))[5];
    await flipBytes(log, victim);
    const reports: [string, ReplayReport][] = [];
    const again = await open({ onDamage: (file: string, r: ReplayReport) => reports.push([file, r]) });
    expect(reports).toHaveLength(1);
    expect(reports[0][0]).toBe(log);
    expect(reports[0][1].damage).toEqual([{ offset: victim.offset, bytes: victim.length }]);
    expect(reports[0][1].keptAs).toMatch(/held\.log\.damaged-/);
    // Every other message reads back whole: the offsets are those of the repaired file, not of the damaged one.
    const kept = ids.filter((id) => id !== 'm5');
    expect((await again.list('u', NOW)).map((h) => [h.msg.id, h.msg.text])).toEqual(kept.map((id) => [id, `text of ${id}`]));
    expect(again.heldTotal).toBe(9);
    expect((await readdir(dir)).filter((f) => f.startsWith('held.log.damaged-'))).toHaveLength(1);
    await again.close();
    const third = await open({ onDamage: () => expect.fail('repaired file reported again') });
    expect((await third.list('u', NOW)).map((h) => h.msg.id)).toEqual(kept);
  });

  it('reports a failed write, rejects the hold (store_failed) and never replays it; holds again once the disk takes writes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
    let full = false;
    const failures: WriteFailure[] = [];
    const store = await open({
      datasync: async (file: { datasync(): Promise<void> }) => {
        if (full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        await file.datasync();
      },
      onWriteFailure: (f: WriteFailure) => failures.push(f),
    });
    const held = (id: string, i: number) => ({ msg: { id, to: 'u', acceptedAt: NOW + i }, expiresAt: NOW + 60_000 });
    await store.hold('u', held('a', 0));
    full = true;
    await expect(store.hold('u', held('b', 1))).rejects.toMatchObject({ code: 'store_failed' });
    expect(failures.map((f) => [f.path, f.cut, (f.error as NodeJS.ErrnoException).code])).toEqual([[join(dir, 'held.log'), true, 'ENOSPC']]);
    expect((await store.list('u', NOW)).map((h) => h.msg.id)).toEqual(['a']);
    expect(store.heldTotal).toBe(1);
    full = false;
    await store.hold('u', held('c', 2));
    await store.close();
    expect((await (await open()).list('u', NOW)).map((h) => h.msg.id)).toEqual(['a', 'c']);
  });
});
