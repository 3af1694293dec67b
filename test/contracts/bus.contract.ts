import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Bus } from '../../bus/bus.js';
import type { BusMessage, GatewayMessage } from '../../protocol/index.js';

/**
 * The Bus contract: every implementation (the in-process MemoryBus, the NATS bus) must pass it.
 * `make` returns a fresh bus; `settle` lets an asynchronous bus flush before assertions.
 */
export function describeBusContract(name: string, make: () => Promise<{ bus: Bus; cleanup: () => Promise<void> }>): void {
  describe(`Bus contract: ${name}`, () => {
    let bus: Bus;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ bus, cleanup } = await make());
    });
    afterEach(async () => {
      await bus.close();
      await cleanup();
    });

    const deliver = (n: number): GatewayMessage => ({ type: 'deliver', sessionId: `s${n}`, frame: { type: 'message', id: `m${n}`, ts: n } });

    const collect = (subject: string) => {
      const got: BusMessage[] = [];
      const sub = bus.subscribe(subject, (m) => got.push(m));
      return { got, sub };
    };

    const eventually = async (cond: () => boolean) => {
      const deadline = Date.now() + 3000;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error('condition not met in 3 s');
        await new Promise((r) => setTimeout(r, 5));
      }
    };

    it('delivers to exact subscribers in publish order', async () => {
      const { got } = collect('sb.gw.a');
      for (let i = 0; i < 100; i++) bus.publish('sb.gw.a', deliver(i));
      await eventually(() => got.length === 100);
      expect(got.map((m) => (m as { sessionId: string }).sessionId)).toEqual(Array.from({ length: 100 }, (_, i) => `s${i}`));
    });

    it('matches * for one token and > for the rest, and nothing else', async () => {
      const star = collect('sb.p.*');
      const rest = collect('sb.>');
      const other = collect('sb.q.*');
      bus.publish('sb.p.7', deliver(1));
      bus.publish('sb.p.7.x', deliver(2));
      await eventually(() => star.got.length === 1 && rest.got.length === 2);
      expect(other.got).toEqual([]);
    });

    it('stops delivering after unsubscribe', async () => {
      const a = collect('sb.gw.a');
      const b = collect('sb.gw.a');
      a.sub.unsubscribe();
      bus.publish('sb.gw.a', deliver(1));
      await eventually(() => b.got.length === 1);
      expect(a.got).toEqual([]);
    });

    it('follows subscriptions made or dropped after a subject was already published to', async () => {
      // The MemoryBus keeps each subject's resolved handlers (issue 13): a later subscription must still be seen.
      const first = collect('sb.gw.b');
      bus.publish('sb.gw.b', deliver(1));
      await eventually(() => first.got.length === 1);
      const star = collect('sb.gw.*');
      const second = collect('sb.gw.b');
      bus.publish('sb.gw.b', deliver(2));
      await eventually(() => star.got.length === 1 && second.got.length === 1 && first.got.length === 2);
      first.sub.unsubscribe();
      star.sub.unsubscribe();
      bus.publish('sb.gw.b', deliver(3));
      bus.publish('sb.gw.c', deliver(4));
      await eventually(() => second.got.length === 2);
      expect(first.got.map((m) => (m as { sessionId: string }).sessionId)).toEqual(['s1', 's2']);
      expect(star.got.map((m) => (m as { sessionId: string }).sessionId)).toEqual(['s2']);
    });

    it('carries every field of a message unchanged', async () => {
      const { got } = collect('sb.p.1');
      const msg: BusMessage = {
        type: 'route', user: 'ü:ser@x',
        msg: { id: 'm1', to: 'ü:ser@x', from: 'f', title: 't', text: 'long '.repeat(100), data: { k: 'v' }, priority: 'high', ttlSeconds: 60, acceptedAt: 1700000000123 },
      };
      bus.publish('sb.p.1', msg);
      await eventually(() => got.length === 1);
      expect(got[0]).toEqual(msg);
    });

    it('answers requests through serve, with wildcards', async () => {
      bus.serve('sb.q.*', (q) => ({ type: 'decisions', decisions: [{ id: (q as { user: string }).user, route: 'pc', reason: 'pc_active', targets: [], at: 1 }] }));
      const reply = await bus.request('sb.q.3', { type: 'decisions_query', user: 'u1', limit: 5 }, 1000);
      expect(reply).toEqual({ type: 'decisions', decisions: [{ id: 'u1', route: 'pc', reason: 'pc_active', targets: [], at: 1 }] });
    });

    it('rejects a request nobody answers with code unavailable', async () => {
      await expect(bus.request('sb.q.nobody', { type: 'user_query', user: 'u' }, 200)).rejects.toMatchObject({ code: 'unavailable' });
    });
  });
}
