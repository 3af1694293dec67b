import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { GatedIngress, ReplayGate } from '../store/replay-gate.js';
import type { Ingress } from '../store/types.js';
import { ManualClock } from './support/manual-clock.js';

const msg = (id: string, acceptedAt: number): ChatMessage => ({ id, to: 'u', acceptedAt });

describe('replay gate (reconnect grace after a restart)', () => {
  it('holds replayed messages for the grace period and passes new ones straight through', () => {
    const clock = new ManualClock(1000);
    const routed: string[] = [];
    const gate = new ReplayGate(1000, 3000, clock, (m) => routed.push(m.id));
    gate.take(msg('old1', 10));
    gate.take(msg('old2', 999));
    gate.start();
    gate.take(msg('new1', 1000));
    expect(routed).toEqual(['new1']);
    clock.advance(2999);
    expect(routed).toEqual(['new1']);
    clock.advance(1);
    expect(routed).toEqual(['new1', 'old1', 'old2']);
    gate.take(msg('old3', 5)); // after the grace, late replays go straight through
    expect(routed).toEqual(['new1', 'old1', 'old2', 'old3']);
  });

  it('routes at once with no grace or nothing held, and keeps held messages unrouted on cancel', () => {
    const clock = new ManualClock(1000);
    const routed: string[] = [];
    const none = new ReplayGate(1000, 0, clock, (m) => routed.push(m.id));
    none.take(msg('a', 1));
    none.start();
    expect(routed).toEqual(['a']);
    const cancelled = new ReplayGate(1000, 3000, clock, (m) => routed.push(m.id));
    cancelled.take(msg('b', 1));
    cancelled.start();
    cancelled.cancel();
    clock.advance(10_000);
    expect(routed).toEqual(['a']);
    expect(cancelled.holding).toBe(1);
  });
});

describe('gated ingress: replayed copies of held messages', () => {
  it('settles a message accepted before the start that the held store holds, and hands out the rest', async () => {
    const clock = new ManualClock(1000);
    const done: string[] = [];
    let handler: ((m: ChatMessage) => void) | undefined;
    const inner = {
      consume: async (h: (m: ChatMessage) => void) => void (handler = h),
      done: (id: string) => void done.push(id),
    } as unknown as Ingress;
    const held = new Set(['held-old', 'held-new']);
    const gated = new GatedIngress(inner, 1000, 0, clock, (m) => held.has(m.id));
    const routed: string[] = [];
    await gated.consume((m) => routed.push(m.id));
    handler!(msg('held-old', 10)); // a settle lost to kill -9: the held store delivers it
    handler!(msg('plain-old', 20)); // accepted before the start, not held: replayed after the grace
    gated.startGrace();
    handler!(msg('held-new', 1000)); // accepted by this process: routed whatever the store says
    expect(done).toEqual(['held-old']);
    expect(routed).toEqual(['plain-old', 'held-new']);
  });
});
