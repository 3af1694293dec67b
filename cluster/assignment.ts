import { fnv1a32 } from '../bus/subjects.js';

/**
 * Which live node should own each partition (issue 4). Pure: the same node set gives the same answer on every node,
 * whatever order the set was read in, so every LeaseKeeper agrees on the target without talking.
 *
 * Balanced rendezvous hashing: every (partition, node) pair gets a pseudo-random score, and pairs are taken best
 * score first while the node has room. Room is floor(P/N), and ceil(P/N) for the first P mod N nodes to get there,
 * so every node ends with exactly floor or ceil. A node joining or leaving only disturbs the pairs it wins or loses,
 * which keeps the partitions that move close to the P/N minimum (see test/cluster-assignment.test.ts).
 *
 * Returns `owner[p]` for p in 0..partitions-1; an empty array when no node is live.
 */
export function assignPartitions(liveNodes: readonly string[], partitions: number): string[] {
  if (!Number.isInteger(partitions) || partitions < 0) throw new RangeError(`partitions must be a non-negative integer, got ${partitions}`);
  const nodes = [...new Set(liveNodes)].sort();
  if (nodes.length === 0 || partitions === 0) return [];

  const n = nodes.length;
  const floor = Math.floor(partitions / n);
  let ceilSlots = partitions % n; // how many nodes may still reach floor + 1

  const pairs: { score: number; p: number; node: number }[] = [];
  const nodeHashes = nodes.map((id) => fnv1a32(id));
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < n; i++) pairs.push({ score: score(nodeHashes[i], p), p, node: i });
  }
  // Ties are broken by partition then node name, so the order is total and the result deterministic.
  pairs.sort((a, b) => b.score - a.score || a.p - b.p || a.node - b.node);

  const owner: string[] = new Array(partitions);
  const load = new Array<number>(n).fill(0);
  let left = partitions;
  for (const { p, node } of pairs) {
    if (owner[p] !== undefined) continue;
    const room = (ceilSlots > 0 ? floor + 1 : floor) - load[node];
    if (room <= 0) continue;
    owner[p] = nodes[node];
    load[node]++;
    if (load[node] === floor + 1) ceilSlots--;
    if (--left === 0) break;
  }
  return owner;
}

/** Partitions per node, for logs and tests. */
export function countByNode(owner: readonly (string | undefined)[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of owner) if (node !== undefined) counts.set(node, (counts.get(node) ?? 0) + 1);
  return counts;
}

/** The largest share any node gets once settled: ceil(P/N). */
export function maxShare(partitions: number, nodes: number): number {
  return nodes === 0 ? 0 : Math.ceil(partitions / nodes);
}

// FNV-1a alone mixes poorly for inputs that differ in one byte; murmur3's finalizer spreads every input bit.
function score(nodeHash: number, p: number): number {
  let h = (nodeHash ^ Math.imul(p + 1, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
