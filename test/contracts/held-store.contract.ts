import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../protocol/index.js';
import { emptyReadState, markDelivered, markRead, toRecord, unmarkDelivered } from '../../store/read-state.js';
import type { HeldStore } from '../../store/types.js';

export interface HeldStoreFixture {
  store: HeldStore;
  /** Reopens the same storage (a restart, or the next owner after a failover); the suite closes `store` first. */
  reopen: () => Promise<HeldStore>;
  cleanup: () => Promise<void>;
}

const NOW = 1_800_000_000_000;
const msg = (id: string, acceptedAt = NOW, extra: Partial<ChatMessage> = {}): ChatMessage => ({ id, to: 'u1', title: 't', text: `text of ${id}`, data: { k: 'v' }, acceptedAt, ...extra });
const ids = (held: { msg: ChatMessage }[]): string[] => held.map((h) => h.msg.id);

/** The behaviour every HeldStore (embedded log, JetStream stream + KV) must share (PROTOCOL.md section 4). */
export function describeHeldStoreContract(name: string, make: () => Promise<HeldStoreFixture>): void {
  describe(`HeldStore contract: ${name}`, () => {
    let fixture: HeldStoreFixture | undefined;
    const open = async (): Promise<HeldStoreFixture> => (fixture = await make());
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    it('holds nothing for an unknown user', async () => {
      const { store } = await open();
      expect(await store.list('nobody', NOW)).toEqual([]);
      expect(await store.count('nobody', NOW)).toBe(0);
      expect(toRecord(await store.reads('nobody'))).toEqual({ unread: [], read: [] });
    });

    it('lists held messages whole, in accept order, per user; a second hold of an id keeps the first', async () => {
      const { store } = await open();
      await store.hold('u1', { msg: msg('b', NOW + 2), expiresAt: NOW + 1000 });
      await store.hold('u1', { msg: msg('a', NOW + 1, { from: 'x', priority: 'high', collapseKey: 'c' }), expiresAt: NOW + 1000 });
      await store.hold('u1', { msg: msg('b', NOW + 2, { text: 'changed' }), expiresAt: NOW + 1000 });
      await store.hold('u2', { msg: msg('z'), expiresAt: NOW + 1000 });
      const held = await store.list('u1', NOW);
      expect(ids(held)).toEqual(['a', 'b']);
      expect(held[0]).toEqual({ msg: msg('a', NOW + 1, { from: 'x', priority: 'high', collapseKey: 'c' }), expiresAt: NOW + 1000 });
      expect(held[1].msg.text).toBe('text of b');
      expect(await store.count('u2', NOW)).toBe(1);
    });

    it('holds an id again once it was dropped: the same id accepted anew past the dedupe window is held, not lost', async () => {
      const { store } = await open();
      await store.hold('u1', { msg: msg('x', NOW), expiresAt: NOW + 1000 });
      expect(await store.drop('u1', ['x'])).toBe(1);
      // Accepted again (section 3's dedupe window had passed): another acceptedAt, held again while nothing is held.
      await store.hold('u1', { msg: msg('x', NOW + 5, { text: 'second' }), expiresAt: NOW + 1000 });
      const held = await store.list('u1', NOW);
      expect(held.map((h) => [h.msg.id, h.msg.text])).toEqual([['x', 'second']]);
      expect(await store.count('u1', NOW)).toBe(1);
    });

    it('leaves out expired messages', async () => {
      const { store } = await open();
      await store.hold('u1', { msg: msg('old'), expiresAt: NOW + 10 });
      await store.hold('u1', { msg: msg('new'), expiresAt: NOW + 1000 });
      expect(ids(await store.list('u1', NOW + 10))).toEqual(['new']);
      expect(await store.count('u1', NOW + 10)).toBe(1);
    });

    it('drops ids, ignoring unknown ones, and says how many were held', async () => {
      const { store } = await open();
      for (const id of ['a', 'b', 'c']) await store.hold('u1', { msg: msg(id), expiresAt: NOW + 1000 });
      expect(await store.drop('u1', ['b', 'nope'])).toBe(1);
      expect(await store.drop('u9', ['a'])).toBe(0);
      expect(await store.drop('u1', ['b'])).toBe(0);
      expect(ids(await store.list('u1', NOW))).toEqual(['a', 'c']);
    });

    it('keeps held messages and read states across a reopen (restart, failover)', async () => {
      const f = await open();
      for (const id of ['a', 'b', 'c']) await f.store.hold('u1', { msg: msg(id), expiresAt: NOW + 1000 });
      await f.store.drop('u1', ['a']);
      const s = emptyReadState();
      markDelivered(s, 'a');
      await f.store.saveReads('u1', s, { delivered: 'a' }, false);
      markDelivered(s, 'b');
      await f.store.saveReads('u1', s, { delivered: 'b' }, false);
      markRead(s, ['a', 'early']);
      await f.store.saveReads('u1', s, { read: ['a', 'early'] }, true);
      await f.store.close();
      const again = await f.reopen();
      expect(ids(await again.list('u1', NOW))).toEqual(['b', 'c']);
      expect(toRecord(await again.reads('u1'))).toEqual({ unread: ['b'], read: ['a', 'early'] });
      await again.drop('u1', ['b']);
      expect(ids(await again.list('u1', NOW))).toEqual(['c']);
    });

    it('keeps a delivery taken back (undelivered: its pushes failed) out of unread across a reopen', async () => {
      const f = await open();
      const s = emptyReadState();
      for (const id of ['a', 'b', 'c']) {
        markDelivered(s, id);
        await f.store.saveReads('u2', s, { delivered: id }, false);
      }
      unmarkDelivered(s, 'b');
      await f.store.saveReads('u2', s, { undelivered: 'b' }, false);
      markDelivered(s, 'd');
      await f.store.saveReads('u2', s, { delivered: 'd' }, false);
      markRead(s, ['a']);
      await f.store.saveReads('u2', s, { read: ['a'] }, true); // durable: what came before it is stored too
      await f.store.close();
      const again = await f.reopen();
      expect(toRecord(await again.reads('u2'))).toEqual({ unread: ['c', 'd'], read: ['a'] });
    });
  });
}
