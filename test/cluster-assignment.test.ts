import { describe, expect, it } from 'vitest';
import { assignPartitions, countByNode, maxShare } from '../cluster/assignment.js';
import { nodeKey } from '../cluster/membership.js';

const nodes = (n: number, prefix = 'node') => Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);
const moved = (a: string[], b: string[]) => a.filter((x, i) => x !== b[i]).length;

describe('assignPartitions', () => {
  describe.each([64, 7, 1])('P=%i', (P) => {
    it.each([1, 2, 3, 4, 5])('N=%i: complete, and every node gets floor or ceil of P/N', (N) => {
      const live = nodes(N);
      const owner = assignPartitions(live, P);
      expect(owner).toHaveLength(P);
      for (const o of owner) expect(live).toContain(o);
      const counts = countByNode(owner);
      for (const id of live) {
        const c = counts.get(id) ?? 0;
        expect(c).toBeGreaterThanOrEqual(Math.floor(P / N));
        expect(c).toBeLessThanOrEqual(maxShare(P, N));
      }
    });

    it.each([1, 2, 3, 4, 5])('N=%i: the same set in any order gives the same answer', (N) => {
      const live = nodes(N, 'host.example');
      const expected = assignPartitions(live, P);
      expect(assignPartitions([...live].reverse(), P)).toEqual(expected);
      expect(assignPartitions([...live.slice(1), live[0], live[0]], P)).toEqual(expected);
    });

    it.each([1, 2, 3, 4])('N=%i -> N+1: a join moves at most the newcomer share plus half of it', (N) => {
      const before = assignPartitions(nodes(N), P);
      const after = assignPartitions(nodes(N + 1), P);
      const share = maxShare(P, N + 1);
      const newcomer = after.filter((o) => o === `node-${N + 1}`).length;
      expect(moved(before, after)).toBeGreaterThanOrEqual(newcomer);
      expect(moved(before, after)).toBeLessThanOrEqual(share + Math.ceil(share / 2));
    });

    it.each([2, 3, 4, 5])('N=%i -> N-1: a leave moves at most the leaver share plus half a share', (N) => {
      const live = nodes(N);
      const before = assignPartitions(live, P);
      const after = assignPartitions(live.slice(0, -1), P);
      const leaverShare = before.filter((o) => o === live[N - 1]).length;
      expect(moved(before, after)).toBeLessThanOrEqual(leaverShare + Math.ceil(maxShare(P, N - 1) / 2));
    });
  });

  it('averages close to the minimum movement over many cluster names (P=64, 3 -> 4)', () => {
    let total = 0;
    const runs = 200;
    for (let r = 0; r < runs; r++) {
      const live = nodes(3, `c${r}`);
      total += moved(assignPartitions(live, 64), assignPartitions([...live, `c${r}-new`], 64));
    }
    expect(total / runs).toBeLessThan(16 * 1.4);
  });

  it('gives nothing to nobody and rejects a bad partition count', () => {
    expect(assignPartitions([], 64)).toEqual([]);
    expect(() => assignPartitions(['a'], -1)).toThrow(RangeError);
  });
});

describe('nodeKey', () => {
  it('is a valid KV key and one-to-one', () => {
    const ids = ['a.b', 'a_b', 'a_002eb', 'host-1', 'h\u00e93', 'h\u0e93', 'x*y>z', 'with space'];
    const keys = ids.map(nodeKey);
    expect(new Set(keys).size).toBe(ids.length);
    for (const k of keys) expect(k).toMatch(/^n\.[A-Za-z0-9_-]+$/);
  });
});
