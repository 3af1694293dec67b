import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SwitchboardError } from '../protocol/index.js';
import { FileInbox, MAX_MESSAGES_PER_RECORD, type FileInboxOptions } from '../store/file-inbox.js';
import { chatMessage, collector } from './contracts/ingress.contract.js';
import { AppendLog, encodeFrame } from '../store/append-log.js';
import { flipBytes, readFrames } from './support/log-frames.js';

const WINDOW = 120_000;

describe('FileInbox', () => {
  let dir: string;
  let clock: number;
  const open: FileInbox[] = [];
  const openInbox = async (options: FileInboxOptions = {}): Promise<FileInbox> => {
    const inbox = await FileInbox.open(dir, { now: () => clock, dedupeWindowMs: WINDOW, ...options });
    open.push(inbox);
    return inbox;
  };
  const segmentFiles = async (): Promise<string[]> => (await readdir(dir)).filter((f) => f.startsWith('inbox-')).sort();
  /** Replayed ids, read by reopening the directory (the marker proves the replay is complete). */
  const replayedIds = async (options: FileInboxOptions = {}): Promise<string[]> => {
    const inbox = await openInbox(options);
    const got = collector();
    await inbox.consume(got.handler);
    const backlog = inbox.stats().pending;
    await got.until(backlog);
    await inbox.close();
    return got.ids;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-inbox-'));
    clock = 1_000_000;
  });
  afterEach(async () => {
    for (const inbox of open.splice(0)) await inbox.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes one turn's settles as one record, and still reads the older one-id records", async () => {
    const inbox = await openInbox();
    for (const id of ['a', 'b', 'c', 'd']) expect(await inbox.accept(chatMessage(id, clock))).toBe('accepted');
    for (const id of ['a', 'b', 'c']) inbox.done(id);
    await inbox.close();
    const [file] = await segmentFiles();
    const records = (await readFrames(join(dir, file))).map((f) => f.record);
    expect(records.filter((r) => r.t === 'settled')).toEqual([{ t: 'settled', ids: ['a', 'b', 'c'] }]);
    // A segment written before settles were batched: one `settled` record per message.
    await appendFile(join(dir, file), encodeFrame({ t: 'settled', id: 'd' }));
    expect(await replayedIds()).toEqual([]);
  });

  it('writes the accepts of one synchronous run as one record, and still reads the older one-message records', async () => {
    const inbox = await openInbox();
    const ids = ['a', 'b', 'c'];
    expect(await Promise.all(ids.map((id) => inbox.accept(chatMessage(id, clock))))).toEqual(['accepted', 'accepted', 'accepted']);
    expect(await inbox.accept(chatMessage('alone', clock))).toBe('accepted');
    await inbox.close();
    const [file] = await segmentFiles();
    const records = (await readFrames(join(dir, file))).map((f) => f.record);
    expect(records.map((r) => (r.t === 'accepted' ? r.msg.id : r.msgs.map((m: { id: string }) => m.id)))).toEqual([ids, 'alone']);
    // A segment written before accepts were batched: one `accepted` record per message.
    await appendFile(join(dir, file), encodeFrame({ t: 'accepted', msg: chatMessage('older', clock) }));
    expect(await replayedIds()).toEqual([...ids, 'alone', 'older']);
  });

  it('keeps every accept of a run that fills records and rolls segments meanwhile, in order, across a restart', async () => {
    const inbox = await openInbox({ segmentBytes: 1 }); // every sealed record fills its segment
    const count = 2 * MAX_MESSAGES_PER_RECORD + 2;
    const ids = Array.from({ length: count }, (_, i) => `r${i}`);
    const results = await Promise.all(ids.map((id) => inbox.accept(chatMessage(id, clock))));
    expect(results).toEqual(Array(count).fill('accepted'));
    expect((await segmentFiles()).length).toBeGreaterThan(1);
    await inbox.close();
    expect(await replayedIds({ segmentBytes: 1 })).toEqual(ids);
  });

  it('loses only the messages of a damaged accepted_many record, reports it, and accepts them again', async () => {
    const inbox = await openInbox();
    for (const run of [['a', 'b'], ['c', 'd', 'e'], ['f']]) await Promise.all(run.map((id) => inbox.accept(chatMessage(id, clock))));
    await inbox.close();
    const [file] = await segmentFiles();
    const frames = await readFrames(join(dir, file));
    expect(frames.map((f) => f.record.t)).toEqual(['accepted_many', 'accepted_many', 'accepted']);
    await flipBytes(join(dir, file), frames[1]);
    const damaged: string[] = [];
    const again = await openInbox({ onDamage: (path) => damaged.push(path) });
    expect(damaged).toEqual([join(dir, file)]);
    const got = collector();
    await again.consume(got.handler);
    await got.until(3);
    expect(got.ids).toEqual(['a', 'b', 'f']);
    expect(await again.accept(chatMessage('d', clock))).toBe('accepted'); // its record is gone: not a duplicate
    expect(await again.accept(chatMessage('a', clock))).toBe('duplicate');
  });

  it('stops a version from before accepted_many at open instead of letting it take the record for a settle', async () => {
    const inbox = await openInbox();
    await Promise.all(['a', 'b'].map((id) => inbox.accept(chatMessage(id, clock))));
    await inbox.close();
    const [file] = await segmentFiles();
    // The replay visitor of those versions (store/file-inbox.ts at 79cf588), reduced to what it does with a record.
    const settled: unknown[] = [];
    const olderVisit = (record: any): void => {
      if (record.t === 'accepted') return;
      if ('ids' in record) for (const id of record.ids) settled.push(id);
      else settled.push(record.id);
    };
    await expect(AppendLog.replay(join(dir, file), olderVisit)).rejects.toThrow(TypeError);
    expect(settled).toEqual([]);
    expect(await replayedIds()).toEqual(['a', 'b']); // this version still reads it
  });

  it('refuses to open a segment that holds a record type it does not know, and leaves the file as it is', async () => {
    const inbox = await openInbox();
    expect(await inbox.accept(chatMessage('a', clock))).toBe('accepted');
    await inbox.close();
    const [file] = await segmentFiles();
    await appendFile(join(dir, file), encodeFrame({ t: 'accepted_zstd', blob: 'x' }));
    const before = await readFile(join(dir, file));
    await expect(FileInbox.open(dir, { now: () => clock, dedupeWindowMs: WINDOW })).rejects.toThrow(/unknown type "accepted_zstd"/);
    expect((await readFile(join(dir, file))).equals(before)).toBe(true);
    expect(await segmentFiles()).toEqual([file]);
  });

  it('writes accepts not yet awaited when closed, and answers them accepted', async () => {
    const inbox = await openInbox();
    const answers = ['p', 'q', 'r'].map((id) => inbox.accept(chatMessage(id, clock)));
    await inbox.close();
    expect(await Promise.all(answers)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(await replayedIds()).toEqual(['p', 'q', 'r']);
  });

  it('refuses an id within the dedupe window and accepts it again after, once settled', async () => {
    const inbox = await openInbox();
    expect(await inbox.accept(chatMessage('m', clock))).toBe('accepted');
    inbox.done('m');
    clock += WINDOW - 1;
    expect(await inbox.accept(chatMessage('m', clock))).toBe('duplicate');
    clock += 1;
    expect(await inbox.accept(chatMessage('m', clock))).toBe('accepted');
  });

  it('refuses an id that is still unsettled even past the window', async () => {
    const inbox = await openInbox();
    await inbox.accept(chatMessage('m', clock));
    clock += 10 * WINDOW;
    expect(await inbox.accept(chatMessage('m', clock))).toBe('duplicate');
  });

  it('rebuilds the dedupe window at open from acceptedAt of settled messages still inside it', async () => {
    const inbox = await openInbox();
    await inbox.accept(chatMessage('old', clock));
    await inbox.accept(chatMessage('recent', clock + 100_000));
    inbox.done('old');
    inbox.done('recent');
    await inbox.close();
    clock += 150_000;
    const again = await openInbox();
    expect(await again.accept(chatMessage('old', clock))).toBe('accepted');
    expect(await again.accept(chatMessage('recent', clock))).toBe('duplicate');
  });

  it('ignores settling an unknown or already settled id', async () => {
    const inbox = await openInbox();
    await inbox.accept(chatMessage('m', clock));
    inbox.done('nope');
    inbox.done('m');
    inbox.done('m');
    expect(inbox.stats().pending).toBe(0);
    await inbox.close();
    expect(await replayedIds()).toEqual([]);
  });

  it('rolls segments and deletes each one whose messages are settled and out of the window', async () => {
    const inbox = await openInbox({ segmentBytes: 1024 });
    for (let n = 0; n < 40; n++) await inbox.accept(chatMessage(`m${n}`, clock));
    expect((await segmentFiles()).length).toBeGreaterThan(3);
    for (let n = 1; n < 40; n++) inbox.done(`m${n}`);
    await inbox.close();
    expect((await segmentFiles()).length).toBeGreaterThan(3); // still inside the dedupe window

    clock += WINDOW;
    expect(await replayedIds({ segmentBytes: 1024 })).toEqual(['m0']);
    // m0 pins its segment and the segments holding settle records of that segment's messages; the rest are gone.
    expect(await segmentFiles()).toEqual(['inbox-000001.log', 'inbox-000004.log']);

    const inbox2 = await openInbox({ segmentBytes: 1024 });
    inbox2.done('m0');
    await inbox2.close();
    expect(await replayedIds()).toEqual([]);
    expect(await segmentFiles()).toHaveLength(0); // the last opened segment received nothing, so it was never created
  });

  it('keeps replaying a message whose later segments were deleted, and none that were settled', async () => {
    const inbox = await openInbox({ segmentBytes: 512, dedupeWindowMs: 1 });
    const got = collector();
    await inbox.consume(got.handler);
    for (let n = 0; n < 30; n++) {
      clock += 1;
      await inbox.accept(chatMessage(`m${n}`, clock));
      if (n % 3 !== 0) inbox.done(`m${n}`);
    }
    clock += 10;
    for (let n = 0; n < 30; n += 3) if (n !== 27) inbox.done(`m${n}`);
    await inbox.close();
    expect(await replayedIds()).toEqual(['m27']);
  });

  it('answers store_failed when a sync fails, cuts the failed write off, and accepts the retry', async () => {
    let failSync = false;
    const inbox = await openInbox({
      datasync: async (file) => {
        if (failSync) throw new Error('EIO: i/o error, fdatasync');
        await file.datasync();
      },
    });
    await inbox.accept(chatMessage('before', clock));
    failSync = true;
    const [failure, duplicateFailure] = await Promise.all(
      [1, 2].map(() => inbox.accept(chatMessage('m', clock)).catch((e: SwitchboardError) => e)),
    );
    expect(failure).toMatchObject({ code: 'store_failed', status: 503 });
    expect(duplicateFailure).toMatchObject({ code: 'store_failed' }); // never 'duplicate' of a message not stored
    await expect(inbox.accept(chatMessage('answered-503', clock))).rejects.toMatchObject({ code: 'store_failed' });
    failSync = false;
    expect(await inbox.accept(chatMessage('m', clock))).toBe('accepted');
    // The failed bytes were cut off, so the segment goes on; 'answered-503' is never replayed (issue 8 part 3).
    expect(inbox.stats()).toEqual({ pending: 2, segments: [1] });
    await inbox.close();
    expect((await replayedIds()).sort()).toEqual(['before', 'm']);
  });

  it('reports a throwing consumer and still answers accepted', async () => {
    const errors: unknown[] = [];
    const inbox = await openInbox({ onConsumerError: (e) => errors.push(e) });
    await inbox.consume(() => {
      throw new Error('consumer bug');
    });
    expect(await inbox.accept(chatMessage('m', clock))).toBe('accepted');
    expect(errors).toHaveLength(1);
  });
});
