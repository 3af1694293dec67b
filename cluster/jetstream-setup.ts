import { jetstream, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/** Tries at creating a bucket that other nodes may be creating at the same moment. */
const CREATE_TRIES = 10;

/**
 * Creates the bucket if missing (with the connection's default timeout: stream creation in a cluster can be slow),
 * then opens it on a JetStream client with a short API timeout. Lease and heartbeat calls are worthless once they
 * are late, and on nats-server 2.9 a watch's consumer create can hang while a cluster peer is down: better to fail
 * fast and retry than to wait the 5 s default.
 */
export async function openBucket(nc: NatsConnection, name: string, opts: Partial<KvOptions>, apiTimeoutMs: number): Promise<KV> {
  await createConcurrently(() => new Kvm(nc).create(name, opts));
  return new Kvm(jetstream(nc, { timeout: apiTimeoutMs })).open(name);
}

/**
 * A second handle on a bucket whose reads go to the stream leader (`allow_direct: false` makes `get` use the
 * STREAM.MSG.GET API instead of a direct get that any replica may answer): the last write as consensus has it.
 */
export function openLeaderReads(nc: NatsConnection, name: string, apiTimeoutMs: number): Promise<KV> {
  return new Kvm(jetstream(nc, { timeout: apiTimeoutMs })).open(name, { allow_direct: false });
}

/**
 * Nodes starting together all create the same stream; nats-server 2.9 may answer the losers of that race with
 * "subjects overlap with an existing stream" instead of the existing stream. Trying again then finds it.
 */
export async function createConcurrently<T>(create: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (err) {
      if (attempt >= CREATE_TRIES || !/subjects overlap|already in use/i.test(String((err as Error)?.message ?? err))) throw err;
      await new Promise((r) => setTimeout(r, 20 * attempt));
    }
  }
}

/**
 * Creates a stream, or makes an existing one match `config`: another node may have created it first, and
 * nats-server 2.9 may answer that race with "subjects overlap" instead of "already in use".
 */
export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.add(config);
  } catch (e) {
    if (!/already in use|exists|subjects overlap/i.test(String(e))) throw e;
    await jsm.streams.update(config.name, config);
  }
}

/** JetStream API error codes of a failed compare-and-set: "wrong last sequence" and its unknown-sequence variant. */
const CAS_CONFLICT_CODES = new Set([10071, 10164]);

/**
 * Whether `err` is a failed KV compare-and-set (`update` with a stale revision, `create` of a key that exists, a put
 * with `previousSeq`): someone else wrote the key since the revision we hold. nats-server answers "wrong last
 * sequence" (JetStream API error 10071, or 10164 when it cannot tell the sequence); nats.js's `create` of a key
 * that exists says "key exists". Any other error (timeout, no responders) is not a conflict.
 */
export function isCasConflict(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'number' && CAS_CONFLICT_CODES.has(e.code)) return true;
  return /wrong last sequence|key exists/i.test(typeof e?.message === 'string' ? e.message : String(err));
}
