import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../protocol/index.js';
import type { AcceptOutcome, Ingress } from '../../store/types.js';

export interface IngressFixture {
  ingress: Ingress;
  /** Reopens the same storage; the suite closes `ingress` first. */
  reopen?: () => Promise<Ingress>;
  cleanup: () => Promise<void>;
}

export function chatMessage(id: string, acceptedAt = Date.now()): ChatMessage {
  return { id, to: 'user-1', from: 'chat', title: 'hi', text: `text of ${id}`, data: { k: 'v' }, acceptedAt };
}

/** A consumed message's fields as accepted: without the ingress's own `acceptSeq` stamp (the cluster's sets one). */
export function fields(m: ChatMessage): ChatMessage {
  const { acceptSeq: _seq, ...rest } = m;
  return rest;
}

/** Collects what a consumer receives; `until(n)` resolves once n messages arrived (awaits, never sleeps). */
export function collector(): { ids: string[]; messages: ChatMessage[]; handler: (m: ChatMessage) => void; until: (n: number) => Promise<void> } {
  const messages: ChatMessage[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const handler = (m: ChatMessage): void => {
    messages.push(m);
    for (const w of waiters.filter((w) => messages.length >= w.n)) w.resolve();
  };
  const until = (n: number): Promise<void> =>
    messages.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }));
  return { messages, handler, until, get ids() { return messages.map((m) => m.id); } };
}

/** The behaviour every Ingress (embedded segment files, JetStream) must share (PROTOCOL.md section 3). */
export function describeIngressContract(name: string, make: () => Promise<IngressFixture>): void {
  describe(`Ingress contract: ${name}`, () => {
    let fixture: IngressFixture | undefined;
    const open = async (): Promise<IngressFixture> => (fixture = await make());
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    it('accepts a new id once and answers duplicate afterwards', async () => {
      const { ingress } = await open();
      expect(await ingress.accept(chatMessage('m1'))).toBe('accepted');
      expect(await ingress.accept(chatMessage('m1'))).toBe('duplicate');
      expect(await ingress.accept(chatMessage('m2'))).toBe('accepted');
    });

    it('takes ids that differ only in whitespace at their ends as different messages, and ids of any characters (section 3: "1-128 chars")', async () => {
      const { ingress } = await open();
      const got = collector();
      await ingress.consume(got.handler);
      const ids = ['edge', 'edge ', ' edge', 'edge\u00a0', 'line\nbreak', 'tab\tid', '👩\u200d💻'];
      for (const id of ids) expect(await ingress.accept(chatMessage(id))).toBe('accepted');
      expect(await ingress.accept(chatMessage('edge '))).toBe('duplicate');
      expect(await ingress.accept(chatMessage('line\nbreak'))).toBe('duplicate');
      await got.until(ids.length);
      expect(got.ids.sort()).toEqual([...ids].sort());
    });

    it('accepts exactly one of concurrent accepts of the same id', async () => {
      const { ingress } = await open();
      const results = await Promise.all([1, 2, 3].map(() => ingress.accept(chatMessage('same'))));
      expect(results.sort()).toEqual(['accepted', 'duplicate', 'duplicate']);
    });

    it('hands the consumer what was accepted before and after consume, in order, duplicates never', async () => {
      const { ingress } = await open();
      const got = collector();
      await ingress.accept(chatMessage('a'));
      await ingress.consume(got.handler);
      await ingress.accept(chatMessage('b'));
      await ingress.accept(chatMessage('a'));
      await ingress.accept(chatMessage('c'));
      await got.until(3);
      expect(got.ids).toEqual(['a', 'b', 'c']);
      expect(fields(got.messages[0])).toEqual(chatMessage('a', got.messages[0].acceptedAt));
    });

    it('replays unsettled messages after a reopen, not settled ones, and still refuses their ids', async (ctx) => {
      const f = await open();
      if (f.reopen === undefined) return ctx.skip();
      const first = collector();
      await f.ingress.consume(first.handler);
      for (const id of ['s1', 'u1', 's2', 'u2']) await f.ingress.accept(chatMessage(id));
      await first.until(4);
      f.ingress.done('s1');
      f.ingress.done('s2');
      await f.ingress.close();

      const again = await f.reopen();
      const got = collector();
      await again.consume(got.handler);
      expect(await again.accept(chatMessage('marker'))).toBe('accepted');
      await got.until(3); // replay comes first, so the marker closes it
      expect(got.ids).toEqual(['u1', 'u2', 'marker']);
      expect(await again.accept(chatMessage('s1'))).toBe('duplicate');
      expect(await again.accept(chatMessage('u1'))).toBe('duplicate');
      await again.close();
    });

    it('refuses accepts after close', async () => {
      const { ingress } = await open();
      await ingress.close();
      await expect(ingress.accept(chatMessage('late'))).rejects.toThrow();
    });

    it('acceptMany answers each message in order as accept would: new, repeated within the batch, seen before', async () => {
      const { ingress } = await open();
      const got = collector();
      await ingress.consume(got.handler);
      expect(await ingress.accept(chatMessage('before'))).toBe('accepted');
      const outcomes = await ingress.acceptMany(['b1', 'before', 'b2', 'b1', 'b3'].map((id) => chatMessage(id)));
      expect(outcomes).toEqual(['accepted', 'duplicate', 'accepted', 'duplicate', 'accepted']);
      expect(await ingress.acceptMany([chatMessage('b2'), chatMessage('b4')])).toEqual(['duplicate', 'accepted']);
      expect(await ingress.accept(chatMessage('b3'))).toBe('duplicate');
      await got.until(5);
      expect(got.ids).toEqual(['before', 'b1', 'b2', 'b3', 'b4']);
      expect(fields(got.messages[1])).toEqual(chatMessage('b1', got.messages[1].acceptedAt));
    });

    it('accepts exactly one copy of an id sent by acceptMany and accept at the same time', async () => {
      const { ingress } = await open();
      const [many, single, again] = await Promise.all([
        ingress.acceptMany([chatMessage('x'), chatMessage('y')]),
        ingress.accept(chatMessage('x')),
        ingress.acceptMany([chatMessage('y')]),
      ]);
      expect([many[0], single].sort()).toEqual(['accepted', 'duplicate']);
      expect([many[1], again[0]].sort()).toEqual(['accepted', 'duplicate']);
    });

    it('acceptMany after close answers every message shutting_down', async () => {
      const { ingress } = await open();
      await ingress.close();
      const outcomes: AcceptOutcome[] = await ingress.acceptMany([chatMessage('late1'), chatMessage('late2')]);
      expect(outcomes.map((o) => (typeof o === 'string' ? o : o.code))).toEqual(['shutting_down', 'shutting_down']);
    });

    it('replays messages accepted by acceptMany after a reopen, in order, and still refuses their ids', async (ctx) => {
      const f = await open();
      if (f.reopen === undefined) return ctx.skip();
      expect(await f.ingress.acceptMany(['r1', 'r2', 'r3'].map((id) => chatMessage(id)))).toEqual(['accepted', 'accepted', 'accepted']);
      await f.ingress.close();

      const again = await f.reopen();
      const got = collector();
      await again.consume(got.handler);
      expect(await again.accept(chatMessage('marker'))).toBe('accepted');
      await got.until(4);
      expect(got.ids).toEqual(['r1', 'r2', 'r3', 'marker']);
      expect(fields(got.messages[0])).toEqual(chatMessage('r1', got.messages[0].acceptedAt));
      expect(await again.acceptMany([chatMessage('r2'), chatMessage('r4')])).toEqual(['duplicate', 'accepted']);
      await again.close();
    });
  });
}
