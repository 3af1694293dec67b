import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * Creates the bucket if missing (with the connection's default timeout: stream creation in a cluster can be slow),
 * then opens it on a JetStream client with a short API timeout. Lease and heartbeat calls are worthless once they
 * are late, and on nats-server 2.9 a watch's consumer create can hang while a cluster peer is down: better to fail
 * fast and retry than to wait the 5 s default.
 */
export async function openBucket(nc: NatsConnection, name: string, opts: Partial<KvOptions>, apiTimeoutMs: number): Promise<KV> {
  await new Kvm(nc).create(name, opts);
  return new Kvm(jetstream(nc, { timeout: apiTimeoutMs })).open(name);
}
