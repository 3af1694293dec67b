import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptBatch } from '../gateway/batch.js';
import { decodeBatchRequest, MAX_BATCH_MESSAGES, SwitchboardError } from '../protocol/index.js';
import { FileInbox } from '../store/file-inbox.js';

/** Issue 10 part 3: a batch is decoded per message and accepted at once, so the embedded inbox syncs it once. */

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
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
    const results = await acceptBatch(d.value, async (m) => {
      if (m.id === 'fails') throw new SwitchboardError('store_failed', 'disk full');
      await new Promise((r) => setTimeout(r, m.id === 'slow' ? 30 : 0));
      return 'accepted';
    });
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
      const results = await acceptBatch(d.value, (m) => inbox.accept(m));
      expect(results.every((r) => 'status' in r && r.status === 'accepted')).toBe(true);
      expect(inbox.segmentSyncs() - before).toBe(1);
      expect(inbox.stats().pending).toBe(500);
    } finally {
      await inbox.close();
    }
  });
});
