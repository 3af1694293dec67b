import { mkdtemp, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { acceptEach } from '../store/accept-each.js';
import { FileInbox, MAX_MESSAGES_PER_RECORD, type FileInboxOptions } from '../store/file-inbox.js';
import type { AcceptOutcome } from '../store/types.js';
import { chatMessage, collector } from './contracts/ingress.contract.js';
import { readFrames } from './support/log-frames.js';

/**
 * Issue 13: `FileInbox.acceptMany` (one log write, one promise per batch) must answer, write and replay exactly what
 * one `accept` per message does. Each scenario runs on two inboxes, one per path, and compares them.
 */

const WINDOW = 120_000;
const SEGMENT = 'inbox-000001.log';

/** Outcomes as they go on the wire: results, or the error bodies (code and message). */
const wire = (outcomes: AcceptOutcome[]): string => JSON.stringify(outcomes.map((o) => (typeof o === 'string' ? o : o.toBody())));

describe('FileInbox.acceptMany against one accept per message', () => {
  const dirs: string[] = [];
  const open: FileInbox[] = [];
  let clock: number;
  const openInbox = async (dir: string, options: FileInboxOptions = {}): Promise<FileInbox> => {
    const inbox = await FileInbox.open(dir, { now: () => clock, dedupeWindowMs: WINDOW, ...options });
    open.push(inbox);
    return inbox;
  };
  /** Two fresh inboxes: `each` takes one accept per message, `many` the batch path. */
  const twoInboxes = async (options: FileInboxOptions = {}): Promise<{ each: FileInbox; many: FileInbox; dirs: [string, string] }> => {
    const a = await mkdtemp(join(tmpdir(), 'sb-batch-each-'));
    const b = await mkdtemp(join(tmpdir(), 'sb-batch-many-'));
    dirs.push(a, b);
    return { each: await openInbox(a, options), many: await openInbox(b, options), dirs: [a, b] };
  };
  const replayedIds = async (dir: string): Promise<string[]> => {
    const inbox = await openInbox(dir);
    const got = collector();
    await inbox.consume(got.handler);
    await got.until(inbox.stats().pending);
    await inbox.close();
    return got.ids;
  };

  beforeEach(() => {
    clock = 1_000_000;
  });
  afterEach(async () => {
    for (const inbox of open.splice(0)) await inbox.close();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it('writes the same segment bytes, frame by frame, and replays the same messages', async () => {
    const { each, many, dirs: [a, b] } = await twoInboxes();
    const msgs: ChatMessage[] = [
      { id: 'm1', to: 'alice', acceptedAt: clock },
      { id: 'm2', to: 'bob', from: 'chat', title: 'Grüße', text: '😀 ünïcödé', data: { k: 'v', t: '123' }, collapseKey: 'c', priority: 'high', ttlSeconds: 60, urgent: true, acceptedAt: clock },
      { id: 'm3', to: 'carol', text: 'x'.repeat(6000), acceptedAt: clock + 1 }, // a large one among small ones
      // 73 in all: past MAX_MESSAGES_PER_RECORD, so both paths split them the same way
      ...Array.from({ length: MAX_MESSAGES_PER_RECORD + 6 }, (_, i) => chatMessage(`n${i}`, clock + 2)),
    ];
    await Promise.all(msgs.map((m) => each.accept(m)));
    await many.acceptMany(msgs);
    await Promise.all([each.close(), many.close()]);
    const [bytesEach, bytesMany] = await Promise.all([readFile(join(a, SEGMENT)), readFile(join(b, SEGMENT))]);
    expect(bytesMany.length).toBeGreaterThan(6000);
    expect(bytesMany.equals(bytesEach)).toBe(true);
    const frames = await readFrames(join(b, SEGMENT));
    expect(frames.map((f) => [f.record.t, f.record.msgs.length])).toEqual([['accepted_many', MAX_MESSAGES_PER_RECORD], ['accepted_many', 9]]);
    expect(frames.flatMap((f) => f.record.msgs.map((m: ChatMessage) => m.id))).toEqual(msgs.map((m) => m.id));
    const ids = msgs.map((m) => m.id);
    expect(await replayedIds(b)).toEqual(ids);
    expect(await replayedIds(a)).toEqual(ids);
  });

  it('answers byte for byte what one accept per message answers: new, repeated, seen, pending past the window, expired, in flight', async () => {
    const { each, many } = await twoInboxes();
    const delivered = { each: collector(), many: collector() };
    await each.consume(delivered.each.handler);
    await many.consume(delivered.many.handler);
    const outcomes: Record<'each' | 'many', AcceptOutcome[]> = { each: [], many: [] };
    for (const inbox of [each, many]) {
      for (const id of ['seen', 'pending', 'expired']) await inbox.accept(chatMessage(id, clock));
      inbox.done('expired');
      inbox.done('seen');
    }
    clock += WINDOW; // 'expired' and 'seen' leave the window; 'pending' is unsettled, so still a duplicate
    for (const inbox of [each, many]) await inbox.accept(chatMessage('seen', clock));
    const batch = ['new1', 'seen', 'new1', 'pending', 'expired', 'flying', 'new2', 'new2'].map((id) => chatMessage(id, clock));
    const inFlight = { each: each.accept(chatMessage('flying', clock)), many: many.accept(chatMessage('flying', clock)) };
    [outcomes.each, outcomes.many] = await Promise.all([acceptEach((m) => each.accept(m), batch), many.acceptMany(batch)]);
    expect(await inFlight.each).toBe('accepted');
    expect(await inFlight.many).toBe('accepted');
    expect(outcomes.many).toEqual(['accepted', 'duplicate', 'duplicate', 'duplicate', 'accepted', 'duplicate', 'accepted', 'duplicate']);
    expect(wire(outcomes.many)).toBe(wire(outcomes.each));
    expect(delivered.many.ids).toEqual(delivered.each.ids);
    expect(delivered.many.ids).toEqual(['seen', 'pending', 'expired', 'seen', 'flying', 'new1', 'expired', 'new2']);
    expect(many.stats()).toEqual(each.stats());
  });

  it('a failed write answers every message of the batch 503 store_failed, delivers and replays none, and a retry goes through', async () => {
    let failSync = false;
    const datasync: FileInboxOptions['datasync'] = async (file) => {
      if (failSync) throw new Error('EIO: i/o error, fdatasync');
      await file.datasync();
    };
    const { each, many, dirs: [, b] } = await twoInboxes({ datasync });
    const delivered = { each: collector(), many: collector() };
    await each.consume(delivered.each.handler);
    await many.consume(delivered.many.handler);
    for (const inbox of [each, many]) await inbox.accept(chatMessage('before', clock));
    failSync = true;
    const batch = ['f1', 'before', 'f2', 'f1'].map((id) => chatMessage(id, clock));
    const sameIdMeanwhile = many.accept(chatMessage('f2', clock)).catch((e: unknown) => e);
    const [fromEach, fromMany] = await Promise.all([acceptEach((m) => each.accept(m), batch), many.acceptMany(batch)]);
    expect(wire(fromMany)).toBe(wire(fromEach));
    expect(fromMany.map((o) => (typeof o === 'string' ? o : `${o.status} ${o.code}`))).toEqual(['503 store_failed', 'duplicate', '503 store_failed', '503 store_failed']);
    expect(wire(fromMany)).toContain('EIO: i/o error, fdatasync');
    expect(await sameIdMeanwhile).toMatchObject({ code: 'store_failed' }); // never 'duplicate' of a message not stored
    expect(delivered.many.ids).toEqual(['before']);
    expect(many.stats()).toEqual({ pending: 1, segments: [1] });

    failSync = false;
    expect(await many.acceptMany(batch)).toEqual(['accepted', 'duplicate', 'accepted', 'duplicate']);
    expect(delivered.many.ids).toEqual(['before', 'f1', 'f2']);
    await many.close();
    expect(await replayedIds(b)).toEqual(['before', 'f1', 'f2']);
  });

  it('replays a batch whose write a crash cut short up to its last whole record, and accepts the rest again', async () => {
    const { many, dirs: [, b] } = await twoInboxes();
    const size = MAX_MESSAGES_PER_RECORD + 5;
    const batch = Array.from({ length: size }, (_, i) => chatMessage(`c${i}`, clock));
    expect(await many.acceptMany(batch)).toEqual(Array(size).fill('accepted'));
    await many.close();
    const path = join(b, SEGMENT);
    const frames = await readFrames(path);
    expect(frames).toHaveLength(2);
    await truncate(path, frames[1].offset + 7); // the write stopped inside the second record
    const again = await openInbox(b);
    const got = collector();
    await again.consume(got.handler);
    await got.until(MAX_MESSAGES_PER_RECORD);
    expect(got.ids).toEqual(batch.slice(0, MAX_MESSAGES_PER_RECORD).map((m) => m.id));
    expect((await stat(path)).size).toBe(frames[1].offset); // the torn tail is cut
    expect(await again.acceptMany(batch)).toEqual([...Array(MAX_MESSAGES_PER_RECORD).fill('duplicate'), ...Array(5).fill('accepted')]);
  });

  it('a failed write of a run that mixes single accepts and a batch answers all of them store_failed, and the retry goes through', async () => {
    let failSync = false;
    const { many, dirs: [, b] } = await twoInboxes({ datasync: async (file) => {
      if (failSync) throw new Error('EIO: i/o error, fdatasync');
      await file.datasync();
    } });
    failSync = true;
    const single = many.accept(chatMessage('s1', clock)).catch((e: unknown) => e);
    const batch = many.acceptMany([chatMessage('b1', clock), chatMessage('s1', clock), chatMessage('b2', clock)]);
    expect(await single).toMatchObject({ code: 'store_failed' });
    expect((await batch).map((o) => (typeof o === 'string' ? o : o.code))).toEqual(['store_failed', 'store_failed', 'store_failed']);
    failSync = false;
    expect(await many.acceptMany([chatMessage('s1', clock), chatMessage('b1', clock), chatMessage('b2', clock)])).toEqual(['accepted', 'accepted', 'accepted']);
    await many.close();
    expect(await replayedIds(b)).toEqual(['s1', 'b1', 'b2']);
  });

  it('writes the accepts of one run before a batch that follows them in the same run', async () => {
    const { many, dirs: [, b] } = await twoInboxes();
    const first = many.accept(chatMessage('first', clock));
    const batch = many.acceptMany([chatMessage('second', clock), chatMessage('third', clock)]);
    expect(await first).toBe('accepted');
    expect(await batch).toEqual(['accepted', 'accepted']);
    await many.close();
    expect(await replayedIds(b)).toEqual(['first', 'second', 'third']);
  });
});
