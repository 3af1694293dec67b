import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptBatch } from '../gateway/batch.js';
import { decodeBatchRequest, MAX_BATCH_MESSAGES, SwitchboardError } from '../protocol/index.js';
import { acceptEach } from '../store/accept-each.js';
import { FileInbox } from '../store/file-inbox.js';

/** Issue 10 part 3: a batch is decoded per message and accepted at once, so the embedded inbox syncs it once. */

let dir: string | undefined;
let otherDir: string | undefined;
afterEach(async () => {
  for (const d of [dir, otherDir]) if (d) await rm(d, { recursive: true, force: true });
  dir = otherDir = undefined;
});

describe('decodeBatchRequest (section 3)', () => {
  it('refuses a body that is not {"messages":[1-500]} as a whole', () => {
    for (const body of [null, [], {}, { messages: {} }, { messages: [] }, { messages: Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => ({})) }]) {
      const d = decodeBatchRequest(body, 1);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error.message).toContain('messages');
    }
  });

  it('validates each message alone, keeping a bad one\'s id when it has a usable one', () => {
    const d = decodeBatchRequest({ messages: [{ id: 'a', to: 'u' }, { id: 'b', to: 'u', ttlSeconds: -1 }, { id: '', to: 'u' }, 'x'] }, 7);
    if (!d.ok) throw d.error;
    expect(d.value.map((i) => (i.ok ? `ok:${i.msg.id}:${i.msg.acceptedAt}` : `err:${i.id}:${i.error.code}`))).toEqual(['ok:a:7', 'err:b:invalid_request', 'err:undefined:invalid_request', 'err:undefined:invalid_request']);
  });
});

describe('acceptBatch', () => {
  it('answers in request order whatever order the accepts finish in, with a store failure alone', async () => {
    const d = decodeBatchRequest({ messages: [{ id: 'slow', to: 'u' }, { id: 'fails', to: 'u' }, { id: 'fast', to: 'u' }] }, 1);
    if (!d.ok) throw d.error;
    const results = await acceptBatch(d.value, (msgs) => acceptEach(async (m) => {
      if (m.id === 'fails') throw new SwitchboardError('store_failed', 'disk full');
      await new Promise((r) => setTimeout(r, m.id === 'slow' ? 30 : 0));
      return 'accepted';
    }, msgs));
    expect(results).toEqual([
      { id: 'slow', status: 'accepted' },
      { id: 'fails', error: { code: 'store_failed', message: 'durable store write failed: disk full' } },
      { id: 'fast', status: 'accepted' },
    ]);
  });

  it('500 messages into the FileInbox cost one write + fdatasync', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-batch-'));
    const inbox = await FileInbox.open(dir);
    try {
      const d = decodeBatchRequest({ messages: Array.from({ length: 500 }, (_, i) => ({ id: `m${i}`, to: `u${i % 7}`, text: 'x'.repeat(100) })) }, Date.now());
      if (!d.ok) throw d.error;
      const before = inbox.segmentSyncs();
      const results = await acceptBatch(d.value, (msgs) => inbox.acceptMany(msgs));
      expect(results.every((r) => 'status' in r && r.status === 'accepted')).toBe(true);
      expect(inbox.segmentSyncs() - before).toBe(1);
      expect(inbox.stats().pending).toBe(500);
    } finally {
      await inbox.close();
    }
  });

  it('answers byte for byte through the inbox\'s acceptMany what one accept per message answered, counting the same', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-batch-'));
    otherDir = await mkdtemp(join(tmpdir(), 'sb-batch-'));
    const [each, many] = [await FileInbox.open(dir), await FileInbox.open(otherDir)];
    try {
      const body = {
        messages: [
          { id: 'a', to: 'u', text: 'hi "there"' }, { id: 'b', to: 'u', ttlSeconds: -1 }, { id: 'a', to: 'u' }, 'x',
          { id: 'seen', to: 'u' }, { to: 'u' }, { id: 'c', to: 'u', data: { k: 'v' } },
        ],
      };
      for (const inbox of [each, many]) await inbox.accept({ id: 'seen', to: 'u', acceptedAt: Date.now() });
      const answer = async (accept: Parameters<typeof acceptBatch>[1]): Promise<string> => {
        const d = decodeBatchRequest(body, Date.now());
        if (!d.ok) throw d.error;
        const counted: string[] = [];
        const results = await acceptBatch(d.value, accept, (status) => counted.push(status));
        return JSON.stringify({ results, counted });
      };
      const slow = await answer((msgs) => acceptEach((m) => each.accept(m), msgs));
      const fast = await answer((msgs) => many.acceptMany(msgs));
      expect(fast).toBe(slow);
      expect(JSON.parse(fast).results.map((r: { status?: string; error?: { code: string } }) => r.status ?? r.error!.code)).toEqual([
        'accepted', 'invalid_request', 'duplicate', 'invalid_request', 'duplicate', 'invalid_request', 'accepted',
      ]);
      expect(JSON.parse(fast).counted).toEqual(['accepted', 'duplicate', 'duplicate', 'accepted']);
    } finally {
      await each.close();
      await many.close();
    }
  });

  it('answers every message of a batch whose acceptMany broke its promise and rejected 503 store_failed', async () => {
    const d = decodeBatchRequest({ messages: [{ id: 'a', to: 'u' }, { id: 'b' }, { id: 'c', to: 'u' }] }, 1);
    if (!d.ok) throw d.error;
    const results = await acceptBatch(d.value, () => Promise.reject(new Error('bug')));
    expect(results.map((r) => ('status' in r ? r.status : r.error.code))).toEqual(['store_failed', 'invalid_request', 'store_failed']);
  });
});
