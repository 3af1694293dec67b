import type { ChildProcess } from 'node:child_process';
import { partitionOf } from '../bus/subjects.js';
import { Answer, type ChatSender, type ClientsChild } from './cluster-sender.js';
import { cpuMs } from './cluster-procs.js';
import { monoMs, userId } from './ipc.js';
import { loadMeter, sleep } from './stats.js';

/** One end-to-end phase counted message by message: every id in, every first receipt out. */
export interface PhaseResult {
  sent: number;
  accepted: number;
  /** Not accepted after the retries (timeout or error): not owed to anyone. */
  failed: number;
  received: number;
  /** Accepted (or `duplicate` on a retry) but not received by any device of the user within the wait. */
  lost: number;
  duplicates: number;
  misrouted: number;
  /** Receipts / (last receipt - first send). */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  cpu: CpuShare;
  recvAt: (number | null)[];
  /** Send-to-receive ms per seq from..to-1 (null: not received). */
  latencyMs: (number | null)[];
  /** Accept-stamp-to-receive ms per seq (wall clock): the part after the send listener decoded the request. */
  fromAcceptMs: (number | null)[];
  from: number;
}

/** % of one core over the phase: each of our processes and everything else on the machine. */
export interface CpuShare {
  nats: number;
  nodes: number;
  clients: number;
  sender: number;
  others: number;
}

export function cpuMeter(procs: { nats: ChildProcess; nodes: ChildProcess[]; clients: ChildProcess }): () => CpuShare {
  const pids = () => [procs.nats.pid, ...procs.nodes.map((n) => n.pid), procs.clients.pid];
  const before = pids().map(cpuMs);
  const machine = loadMeter();
  const at = performance.now();
  return () => {
    const ms = performance.now() - at;
    const pct = pids().map((pid, i) => ((cpuMs(pid) - before[i]) / ms) * 100);
    const m = machine();
    // A killed node's CPU is unreadable afterwards: counted as 0 (its share then shows under "others").
    const ok = (x: number) => (Number.isFinite(x) ? x : 0);
    const nodes = pct.slice(1, -1).reduce((a, b) => a + ok(b), 0);
    const share = { nats: ok(pct[0]), nodes, clients: ok(pct[pct.length - 1]), sender: m.cpuPct };
    return { ...share, others: Math.max(0, m.machinePct - share.nats - share.nodes - share.clients - share.sender) };
  };
}

/** The `q`-quantile (0..1) of ascending `sorted` values, nearest rank; NaN when there are none. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Waits (up to `waitMs`) for every accepted message of seq from..to-1 to be received, then counts the phase. */
export async function settle(sender: ChatSender, clients: ClientsChild, from: number, to: number, waitMs: number, cpu: CpuShare, dupsBefore: number, misBefore: number): Promise<PhaseResult> {
  await sender.settled();
  const owed = (s: number) => sender.answer[s] === Answer.Accepted || sender.answer[s] === Answer.Duplicate;
  const deadline = Date.now() + waitMs;
  let r = await clients.receipts(from, to);
  for (;;) {
    let missing = 0;
    for (let s = from; s < to; s++) if (owed(s) && r.recvAt[s - from] == null) missing++;
    if (missing === 0 || Date.now() > deadline) break;
    await sleep(500);
    r = await clients.receipts(from, to);
  }
  const stats = await clients.stats();
  let accepted = 0, failed = 0, received = 0, lost = 0, first = Infinity, last = -Infinity;
  const lat: number[] = [];
  for (let s = from; s < to; s++) {
    const at = r.recvAt[s - from];
    if (owed(s)) accepted++;
    else failed++;
    if (at != null) {
      received++;
      last = Math.max(last, at);
      const l = r.latencyMs[s - from];
      if (l != null) lat.push(l);
    } else if (owed(s)) lost++;
    first = Math.min(first, sender.sentAt[s]);
  }
  const sorted = Float64Array.from(lat).sort();
  return {
    sent: to - from, accepted, failed, received, lost, duplicates: stats.duplicates - dupsBefore, misrouted: stats.misrouted - misBefore,
    rate: received / ((last - first) / 1000), p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), maxMs: quantile(sorted, 1),
    cpu, recvAt: r.recvAt, latencyMs: r.latencyMs, fromAcceptMs: r.fromAcceptMs, from,
  };
}

/**
 * Takeover under a steady load: `rate` msgs/s to the users connected to the survivors; SIGKILL of `victim` after a
 * third of the run. Takeover time = for each partition the victim owned, the first receipt of a message sent after
 * the kill, minus the kill; the largest of them (the last partition to come back).
 */
export async function takeover(o: {
  sender: ChatSender; clients: ClientsChild; users: number[]; rate: number; durationMs: number; victim: ChildProcess;
  victimPartitions: Set<number>; partitions: number; waitMs: number; meter: () => () => CpuShare;
}): Promise<PhaseResult & { takeoverMs: number; partitionsBack: number; killAt: number }> {
  const before = await o.clients.stats();
  const cpu = o.meter();
  let killAt = NaN;
  const kill = sleep(o.durationMs / 3).then(() => {
    killAt = monoMs();
    o.victim.kill('SIGKILL');
  });
  const range = await o.sender.paced(o.users, o.rate, o.durationMs);
  await kill;
  const r = await settle(o.sender, o.clients, range.from, range.to, o.waitMs, cpu(), before.duplicates, before.misrouted);
  const back = new Map<number, number>();
  for (let s = range.from; s < range.to; s++) {
    const at = r.recvAt[s - range.from];
    const p = partitionOf(userId(o.sender.user[s]), o.partitions);
    if (at == null || o.sender.sentAt[s] < killAt || !o.victimPartitions.has(p)) continue;
    back.set(p, Math.min(back.get(p) ?? Infinity, at));
  }
  const takeoverMs = back.size < o.victimPartitions.size ? Infinity : Math.max(...back.values()) - killAt;
  return { ...r, takeoverMs, partitionsBack: back.size, killAt };
}
