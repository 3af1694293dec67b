import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileInbox } from '../store/file-inbox.js';
import { userId } from './ipc.js';
import { LatencySample, monoNs } from './stats.js';

/**
 * A stage between the ceiling and the end-to-end rows: the durable in-process entry alone (FileInbox.accept,
 * group-committed write + fdatasync), its consumer settling each message at once, as the router does when it
 * is done. Shows how much of the end-to-end gap is the disk and how much is routing and sockets.
 */

export interface IngressResult {
  concurrency: number;
  acceptsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** write + fdatasync rounds per accepted message (settle records share the same group commit). */
  syncsPerMessage: number;
  /** Process CPU (all threads: this one, the thread pool's, GC helpers) per accept, µs. */
  cpuUsPerAccept: number;
}

export async function ingressAlone(count: number, concurrency: number): Promise<IngressResult> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-bench-inbox-'));
  const inbox = await FileInbox.open(dir, {});
  await inbox.consume((m) => inbox.done(m.id));
  const latency = new LatencySample();
  let next = 0;
  const start = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const seq = next++;
      const t = process.hrtime.bigint();
      await inbox.accept({ id: `in-${seq}`, to: userId(seq % 2000), data: { t: monoNs() }, acceptedAt: Date.now() });
      latency.add(Number(process.hrtime.bigint() - t));
    }
  }));
  const secs = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  // The log's counters are not part of the Ingress interface; read them when this implementation has them.
  const log = (inbox as unknown as { current?: { log?: { stats?: { syncs: number } } } }).current?.log;
  const syncs = log?.stats?.syncs ?? NaN;
  await inbox.close();
  await rm(dir, { recursive: true, force: true });
  return { concurrency, acceptsPerSec: count / secs, p50Ms: latency.quantileMs(0.5), p99Ms: latency.quantileMs(0.99), syncsPerMessage: syncs / count, cpuUsPerAccept: (used.user + used.system) / count };
}
