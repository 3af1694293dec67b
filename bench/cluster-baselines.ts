import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

/**
 * The two baselines of the cluster bench, measured against the bench's own nats-server in the same run:
 * the ceiling (raw core NATS publish -> subscribe of the same MessagePack payload) and single awaited JetStream
 * publishes (what a sender that waits for each durable store before the next one gets).
 */

/** One publisher and one subscriber connection; publishes in chunks, each followed by a flush. Returns msgs/s received. */
export async function rawNatsRate(url: string, payload: Uint8Array, count: number): Promise<number> {
  const pub = await connect({ servers: url, name: 'bench-raw-pub' });
  const sub = await connect({ servers: url, name: 'bench-raw-sub' });
  try {
    const subject = 'bench.raw';
    let got = 0;
    let lastAt = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    sub.subscribe(subject, {
      callback: () => {
        if (++got === count) (lastAt = performance.now()), done();
      },
    });
    await sub.flush();
    const chunk = 1000;
    const started = performance.now();
    for (let sent = 0; sent < count;) {
      for (let i = 0; i < chunk && sent < count; i++, sent++) pub.publish(subject, payload);
      await pub.flush(); // the server has all of this chunk before the next one: bounded buffers, no slow consumer
    }
    const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`raw NATS: ${got}/${count} received`)), 60_000).unref());
    await Promise.race([all, timeout]);
    return count / ((lastAt - started) / 1000);
  } finally {
    await pub.close();
    await sub.close();
  }
}

/** Awaits each `js.publish` before the next on a scratch file-stored stream (as the ingress stream). Returns publishes/s. */
export async function awaitedJetStreamRate(url: string, payload: Uint8Array, durationMs: number): Promise<{ rate: number; count: number }> {
  const nc = await connect({ servers: url, name: 'bench-js-awaited' });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'bench_scratch', subjects: ['bench.scratch'], retention: RetentionPolicy.Limits, storage: StorageType.File, duplicate_window: 120_000_000_000 });
    const js = jetstream(nc);
    for (let i = 0; i < 200; i++) await js.publish('bench.scratch', payload, { msgID: `w${i}` }); // warm-up
    let count = 0;
    const started = performance.now();
    while (performance.now() - started < durationMs) await js.publish('bench.scratch', payload, { msgID: `s${count++}` });
    const rate = count / ((performance.now() - started) / 1000);
    await jsm.streams.delete('bench_scratch');
    return { rate, count };
  } finally {
    await nc.close();
  }
}
