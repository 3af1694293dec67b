import { jetstream, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Bucket, Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * The keys of a bucket that match `filter` (a key pattern such as `n.>`), from the bucket stream's subject list: one
 * STREAM.INFO request with `subjects_filter` (paged by nats.js, each page with the client's API timeout). Not
 * `kv.keys()`: nats.js ends that on a message whose pending count is 0 or on the consumer's idle heartbeat (5 s of
 * no messages), and on a bucket whose keys are rewritten every second (membership beats) with nats-server 2.9.10
 * neither came: a node's start hung in it for good, its keys list growing with every beat of the others (a 3-node
 * bench start). Keys whose last write is a delete are listed too: a caller reads each key anyway. A KV that is no
 * JetStream bucket (tests' in-memory ones) lists its own keys, once each.
 */
export async function bucketKeys(kv: KV, filter: string): Promise<string[]> {
  if (!(kv instanceof Bucket)) {
    const keys = new Set<string>();
    for await (const k of await kv.keys(filter)) keys.add(k);
    return [...keys];
  }
  const info = await kv.jsm.streams.info(kv.stream, { subjects_filter: `${kv.prefix}.${filter}` });
  const from = kv.prefix.length + 1;
  return Object.keys(info.state.subjects ?? {}).map((subject) => kv.decodeKey(subject.slice(from)));
}

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

/**
 * How long after a compare-and-set that won a writer re-reads the key on the stream leader before acting on it
 * (a lease, a node id): nats-server 2.9 checks the expected revision before consensus (nats-server#4320), so two
 * racing writes can both be answered as won; by then the leader has applied both and keeps the later one.
 */
export const LEADER_CONFIRM_WAIT_MS = 50;

/** JetStream API error 10071, "wrong last sequence": the compare-and-set lost, the key has another last revision. */
const CAS_CONFLICT = 10071;
/**
 * JetStream API error 10164, "wrong last sequence unknown": another write to the key was still being applied, so the
 * server could not check the expected revision. The outcome is not known yet: it is not a conflict.
 */
const CAS_UNKNOWN = 10164;

/**
 * Whether `err` is a failed KV compare-and-set (`update` with a stale revision, a put with `previousSeq`, `create` of
 * a key that exists): someone else wrote the key since the revision we hold. nats-server answers JetStream API error
 * 10071 "wrong last sequence" (older clients also said "key exists" for `create`). 10164 is not one
 * (`isCasOutcomeUnknown`), nor is a timeout or "no responders": a caller that treats a conflict as lost (a lease)
 * must not do so on those.
 */
export function isCasConflict(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e?.code === CAS_UNKNOWN) return false;
  if (e?.code === CAS_CONFLICT) return true;
  const text = typeof e?.message === 'string' ? e.message : String(err);
  return /wrong last sequence|key exists/i.test(text) && !/unknown/i.test(text);
}

/** JetStream API error 10164: the server could not check the expected revision yet; read again, then retry. */
export function isCasOutcomeUnknown(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return e?.code === CAS_UNKNOWN || (typeof e?.message === 'string' && /wrong last sequence unknown/i.test(e.message));
}
