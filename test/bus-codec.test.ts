import { describe, expect, it } from 'vitest';
import { decodeBusMessage, encodeBusMessage, type BusMessage } from '../protocol/index.js';
import { partitionOf, fnv1a32, Subjects } from '../bus/subjects.js';

describe('bus codec (MessagePack)', () => {
  it('round-trips every message kind', () => {
    const msgs: BusMessage[] = [
      { type: 'session_open', user: 'u', device: 'd', kind: 'mobile', os: 'ios', session: { node: 'n', id: 's1' }, at: 5 },
      { type: 'presence', user: 'u', device: 'd', sessionId: 's1', state: 'inactive', reason: 'screen_locked', at: 6 },
      { type: 'route', user: 'u', msg: { id: 'm', to: 'u', data: { a: 'b' }, acceptedAt: 7 } },
      { type: 'deliver', sessionId: 's1', frame: { type: 'message', id: 'm', text: '你好', ts: 7 } },
    ];
    for (const m of msgs) expect(decodeBusMessage(encodeBusMessage(m))).toEqual(m);
  });

  it('is smaller than JSON for a typical delivery', () => {
    const m: BusMessage = { type: 'deliver', sessionId: 's-123', frame: { type: 'message', id: 'msg-0001', from: 'alice', text: 'hello there', ts: 1700000000000 } };
    expect(encodeBusMessage(m).length).toBeLessThan(JSON.stringify(m).length);
  });
});

describe('partitions', () => {
  it('is FNV-1a 32-bit (reference vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('spreads users over partitions and names subjects by partition', () => {
    const counts = new Array(64).fill(0);
    for (let i = 0; i < 64_000; i++) counts[partitionOf(`user-${i}`, 64)]++;
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
    const s = new Subjects('switchboard', 64);
    expect(s.owner('a')).toBe(`switchboard.p.${0xe40c292c % 64}`);
    expect(s.gateway('host.example-1')).toBe('switchboard.gw.host_example-1');
  });
});
