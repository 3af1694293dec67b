import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';

/**
 * While a phase runs: one KV put (file bucket, as the leases) every `everyMs` from a connection of its own in the
 * bench process, which is not the busy node. Its round trips tell a slow nats-server from a stalled node when the
 * nodes lose leases (bench/README.md, cluster p99). `stop()` returns the p99 and max round trip, ms.
 */
export async function startKvProbe(url: string, everyMs = 100): Promise<{ stop(): Promise<{ count: number; p99Ms: number; maxMs: number }> }> {
  const nc = await connect({ servers: url, name: 'bench-kv-probe' });
  const kv = await new Kvm(nc).create('bench_kv_probe', { history: 1 });
  const rtts: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const t = performance.now();
      await kv.put('k', String(i));
      rtts.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await nc.close();
      const sorted = rtts.sort((a, b) => a - b);
      return { count: sorted.length, p99Ms: sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)] ?? NaN, maxMs: sorted[sorted.length - 1] ?? NaN };
    },
  };
}
