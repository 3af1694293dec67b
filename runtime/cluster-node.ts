import { Kvm } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { Router } from '../actors/router.js';
import type { Bus, Subscription } from '../bus/bus.js';
import { JetStreamIngress } from '../cluster/jetstream-ingress.js';
import { KvDeviceRegistry } from '../cluster/kv-device-registry.js';
import { createConcurrently } from '../cluster/lease-bucket.js';
import { LeaseKeeper, type Fence } from '../cluster/lease-keeper.js';
import { Membership } from '../cluster/membership.js';
import { NatsBus } from '../cluster/nats-bus.js';
import { SendListener } from '../cluster/send-listener.js';
import { partitionOf, subjectToken, Subjects } from '../bus/subjects.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { createInbox, type NatsConnection } from '@nats-io/transport-node';
import { encodeBusMessage, type BusMessage, type ChatMessage, type OwnerMessage, type OwnerQuery } from '../protocol/index.js';
import { PushPool } from '../senders/pool.js';
import { systemClock } from '../base/clock.js';
import type { Config } from './config.js';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { connectNats } from './nats-connect.js';
import type { RunningNode, StartOptions } from './node.js';
import { loadSenderConfig } from './sender-config.js';
import { AcceptTracker } from '../store/accept-tracker.js';

const packr = new Packr({ useRecords: false });
/** Longest wait for gateways to resend a partition's sessions before its new owner starts routing. */
const RESYNC_WAIT_MS = 1000;
/** How long start-up keeps retrying JetStream set-up before the node exits. */
const STARTUP_RETRY_MS = 30_000;

/** Retries a start-up step against JetStream (e.g. no meta leader yet) for up to STARTUP_RETRY_MS. */
async function untilReady<T>(step: () => Promise<T>, what: string, log: { warn(o: object, m: string): void }): Promise<T> {
  const deadline = Date.now() + STARTUP_RETRY_MS;
  for (let wait = 200; ; wait = Math.min(wait * 2, 2000)) {
    try {
      return await step();
    } catch (err) {
      if (Date.now() + wait > deadline) throw new Error(`${what}: ${(err as Error).message}`);
      log.warn({ err: (err as Error).message, what }, 'JetStream not ready yet; retrying');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Publishes a request every gateway answers and waits for `expected` answers or `timeoutMs`; returns how many came. */
async function askGateways(nc: NatsConnection, subject: string, msg: BusMessage, expected: number, timeoutMs: number): Promise<number> {
  const inbox = createInbox();
  let got = 0;
  const sub = nc.subscribe(inbox, { max: expected });
  const timer = setTimeout(() => sub.unsubscribe(), timeoutMs);
  nc.publish(subject, encodeBusMessage(msg), { reply: inbox });
  for await (const _ of sub) got++;
  clearTimeout(timer);
  return got;
}

/**
 * The cluster composition root (SWITCHBOARD_NATS_URL set; issue 4). Gateways take any client and forward over core
 * NATS to the owner of the user's partition; ownership is a lease per partition in a JetStream KV bucket; messages
 * enter a JetStream work-queue stream and the owner acks each once its decision was carried out.
 */
export async function startClusterNode(config: Config, opts: StartOptions = {}): Promise<RunningNode> {
  const log = opts.log ?? createLogger(config.logLevel);
  const clock = opts.clock ?? systemClock;
  const metrics = opts.metrics ?? new Metrics();
  const P = config.partitions;
  const prefix = subjectToken(config.subjectPrefix);
  const replicas = config.nats.replicas;

  const nc = await connectNats(config);
  // Leases and membership on a connection of their own (issue 13): on a node saturated with messages, a lease
  // renewal's answer would otherwise wait behind thousands of deliveries read from the same socket, come back after
  // the local deadline, and the partition would be given up (seen as multi-second p99 under max rate).
  const control = await connectNats(config, 'control');
  for (const [conn, name] of [[nc, 'data'], [control, 'control']] as const) {
    void (async () => {
      for await (const s of conn.status()) log.info({ nats: s.type, connection: name }, 'nats connection status');
    })().catch(() => undefined);
  }
  const natsBus = new NatsBus(nc, (err, subject) => log.warn({ err: String(err), subject }, 'bus message dropped'));
  const subjects = new Subjects(config.subjectPrefix, P);
  // A JetStream cluster that just formed may not have a meta leader yet: keep trying for a while before giving up.
  const ingress = await untilReady(() => JetStreamIngress.open(nc, { prefix: config.subjectPrefix, partitions: P, replicas }), 'ingress stream', log);
  const registry = new KvDeviceRegistry(await untilReady(() => createConcurrently(() => new Kvm(nc).create(`${prefix}_devices`, { history: 1, replicas })), 'devices bucket', log));
  const pushes = new PushPool({ config: loadSenderConfig(config), log, threads: config.senderThreads, maxAttempts: config.pushMaxAttempts, clock, metrics });
  const membership = new Membership({ nc: control, prefix, replicas, nodeId: config.nodeId, clock, log });

  // JetStream acks by message id, per partition, so a lost partition can forget its pending ones.
  const acks = new Map<string, { p: number; ack: (() => void)[] }>();
  const fences = new Map<number, Fence>();
  let keeper: LeaseKeeper;
  const mayAct = (user: string): boolean => keeper.isValid(partitionOf(user, P));
  // Deliveries carry the owner's fence so gateways can drop those of an owner that was replaced meanwhile.
  const fencedBus: Bus = {
    ...natsBus,
    publish(subject: string, msg: BusMessage) {
      if (msg.type === 'deliver' && msg.user !== undefined) {
        const p = partitionOf(msg.user, P);
        const fence = keeper.fence(p);
        if (!fence) return;
        msg = { ...msg, fence: { partition: p, revision: fence.revision } };
      }
      natsBus.publish(subject, msg);
    },
    subscribe: natsBus.subscribe.bind(natsBus),
    request: natsBus.request.bind(natsBus),
    serve: natsBus.serve.bind(natsBus),
    close: natsBus.close.bind(natsBus),
  };

  const router = new Router({
    nodeId: config.nodeId, bus: fencedBus, subjects, registry, pushes, clock, metrics, log,
    ackTimeoutMs: config.ackTimeoutMs, presenceTtlMs: config.presenceTtlMs, pushDelayMs: config.pushDelayMs,
    passivateAfterMs: config.passivateAfterMs,
    settle: () => {},
    decided: (id) => {
      const entry = acks.get(id);
      if (!entry) return;
      acks.delete(id);
      for (const ack of entry.ack) ack();
    },
    mayAct,
    onRouted: (e) => nc.publish(subjects.routedEvents, packr.pack(e)),
  });

  const partitionSubs = new Map<number, Subscription[]>();
  const forget = (p: number): void => {
    for (const s of partitionSubs.get(p) ?? []) s.unsubscribe();
    partitionSubs.delete(p);
    fences.delete(p);
    metrics.ownedPartitions.set(partitionSubs.size);
    for (const [id, e] of acks) if (e.p === p) acks.delete(id); // unacked: JetStream redelivers to the next owner
  };
  keeper = new LeaseKeeper({
    nc: control, bucket: LeaseKeeper.bucketName(prefix), replicas, nodeId: config.nodeId, partitions: P, membership, clock, log,
    onAcquire: async (p, fence) => {
      fences.set(p, fence);
      partitionSubs.set(p, [
        natsBus.subscribe(subjects.ownerPartition(p), (m) => router.handle(m as OwnerMessage)),
        natsBus.serve(subjects.queryPartition(p), (q) => router.answer(q as OwnerQuery)),
      ]);
      // Presence first: gateways resend this partition's sessions, and only once they answered (or a short wait
      // passed) does routing start, so queued messages do not meet an empty presence table.
      const answered = await askGateways(nc, subjects.resync, { type: 'resync', partition: p, partitions: P }, membership.live().length, RESYNC_WAIT_MS);
      log.debug({ partition: p, gateways: answered }, 'sessions resent by gateways');
      await ingress.consume(p, (msg: ChatMessage, ack) => {
        const entry = acks.get(msg.id);
        if (entry) entry.ack.push(ack);
        else acks.set(msg.id, { p, ack: [ack] });
        router.handle({ type: 'route', user: msg.to, msg });
      });
      metrics.ownedPartitions.set(partitionSubs.size);
      log.info({ partition: p, revision: fence.revision }, 'partition acquired');
    },
    onRelease: async (p) => {
      await ingress.stop(p);
      for (const s of partitionSubs.get(p) ?? []) s.unsubscribe();
      await router.drain(config.shutdownTimeoutMs);
      router.evict((u) => partitionOf(u, P) === p);
      forget(p);
      log.info({ partition: p }, 'partition handed off');
    },
    onLost: (p) => {
      void ingress.stop(p);
      router.evict((u) => partitionOf(u, P) === p);
      forget(p);
      log.warn({ partition: p }, 'partition lease lost: stopped acting for it');
    },
  });

  let gateway: Gateway | undefined;
  let sendListener: SendListener | undefined;
  let port = 0;
  let stoppingNow = false;
  const trackedIngress = new AcceptTracker(ingress);
  const isReady = () => !stoppingNow && keeper.settled();

  await untilReady(() => membership.start(), 'membership bucket', log);
  await untilReady(() => keeper.start(), 'leases bucket', log);
  if (config.roles.includes('gateway')) {
    gateway = createGateway({
      config, nodeId: config.nodeId, bus: natsBus, subjects, ingress: trackedIngress, registry, metrics, log, clock,
      jwtSecret: config.jwtSecret!, apiKey: config.apiKey!, isReady,
    });
    port = await gateway.listen(config.host, config.port);
    sendListener = new SendListener({
      nc, subject: subjects.send, accept: (m) => trackedIngress.accept(m), now: () => clock.now(),
      onAccepted: (source) => metrics.messagesAccepted.inc({ source }),
      onError: (err) => log.warn({ err: String(err) }, 'switchboard.send request failed'),
    });
  }
  log.info({ node: config.nodeId, host: config.host, port, nats: config.natsServers, partitions: P }, 'switchboard listening');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      stoppingNow = true;
      log.info('stopping: handing partitions off');
      gateway?.stopAccepting();
      await sendListener?.stop();
      await trackedIngress.settled();
      // Hand every partition off (stop consuming, finish in-flight, release) while sessions are still up.
      await keeper.stop();
      await gateway?.closeSessions(1001);
      router.stop();
      await pushes.close();
      await gateway?.close();
      await natsBus.close();
      await nc.drain();
      await control.drain();
      log.info('stopped');
    })());

  return {
    nodeId: config.nodeId, port, router, ingress: trackedIngress, metrics,
    apiKey: config.apiKey!, jwtSecret: config.jwtSecret!, stop,
  };
}
