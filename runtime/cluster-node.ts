import { Kvm } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { DECISIONS_PER_USER, DecisionHistory } from '../actors/decision-history.js';
import { UserDirectory } from '../actors/directory.js';
import { FencedBus, ownerFenceOf } from '../bus/fence.js';
import { partitionOf, subjectToken, Subjects } from '../bus/subjects.js';
import { TurnBatchedBus } from '../bus/turn-batched-bus.js';
import { JetStreamIngress } from '../cluster/jetstream-ingress.js';
import { DECISION_HANDOFF_MAX_AGE_MS, KvDecisionHandoff } from '../cluster/decision-handoff.js';
import { DecisionWriteBehind } from '../cluster/decision-write-behind.js';
import { KvDeviceRegistry } from '../cluster/kv-device-registry.js';
import { JetStreamHeldStore, READS_HISTORY } from '../cluster/jetstream-held-store.js';
import { KvPolicyStore } from '../cluster/kv-policy-store.js';
import { createConcurrently } from '../cluster/jetstream-setup.js';
import { DEFAULT_LEASE_MS, LeaseKeeper } from '../cluster/lease-keeper.js';
import { Membership, NodeIdInUseError, PartitionsMismatchError } from '../cluster/membership.js';
import { NatsBus } from '../cluster/nats-bus.js';
import { LeaseOwnershipView } from '../cluster/ownership-view.js';
import { MetricsExchange } from '../cluster/metrics-exchange.js';
import { PartitionHost } from '../cluster/partition-host.js';
import { SendListener } from '../cluster/send-listener.js';
import { isReplicasWithoutCluster, untilJetStreamReady } from '../cluster/startup.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { createOperatorServer, type OperatorServer } from '../gateway/operator-endpoints.js';
import { PushPool } from '../senders/pool.js';
import { AcceptTracker } from '../store/accept-tracker.js';
import { ConfigError, gatewayConfigOf, type Config } from './config.js';
import { connectNats } from './nats-connect.js';
import type { RunningNode, StartOptions } from './running-node.js';
import { listenOn } from './listen.js';
import { announceStop } from './shutdown-delay.js';
import { loadSenderConfig, logVendorsOn } from './sender-config.js';
import { canPushWith } from '../senders/vendor-config.js';
import { RoutingSummary, logDecision } from '../base/routing-log.js';
import { startTokenSweep } from '../store/token-sweep.js';
import { StartError } from './start-error.js';
import { natsEventPublisher, natsEventSource, registrationRules, tokenRemovalListener } from './token-removals.js';

const packr = new Packr({ useRecords: false });

/** Sessions are resent a second time this long after the bus reconnected: two lease periods and a margin. */
const RESEND_AFTER_RECONNECT_MS = 2 * DEFAULT_LEASE_MS + 1000;

/** Log level of each nats.js connection status (`conn.status()` types); any other is info. */
const NATS_STATUS_LEVEL: Partial<Record<string, 'debug' | 'warn'>> = {
  ping: 'debug', reconnecting: 'debug', forceReconnect: 'debug',
  disconnect: 'warn', error: 'warn', staleConnection: 'warn', slowConsumer: 'warn', ldm: 'warn',
};

/** The level a nats.js connection status is logged at: a lost or failing connection warns, pings are debug. */
export function natsStatusLevel(type: string): 'debug' | 'info' | 'warn' {
  return NATS_STATUS_LEVEL[type] ?? 'info';
}

/**
 * The cluster composition root (SWITCHBOARD_NATS_URL set). It only chooses and wires: gateways forward over core
 * NATS to the owner of the user's partition; ownership is a lease per partition (cluster/lease-keeper.ts) and a
 * partition's work is hosted by cluster/partition-host.ts; messages enter a JetStream work-queue stream and the
 * owner acks each once it is done with it; deliveries are fenced by lease revision (bus/fence.ts).
 */
export async function startClusterNode(config: Config, opts: Required<StartOptions>): Promise<RunningNode> {
  const { log, clock, metrics } = opts;
  // SWITCHBOARD_ROLES: `router` takes partitions (and needs `sender`: pushes leave from the owner's pool);
  // `gateway` holds clients and the HTTP API. A gateway-only node routes nothing and sends no pushes.
  const routes = config.roles.includes('router');
  if (routes !== config.roles.includes('sender')) throw new ConfigError('SWITCHBOARD_ROLES', 'router and sender together (vendor pushes leave from the node that owns the user)');
  const P = config.partitions;
  const prefix = subjectToken(config.subjectPrefix);
  const replicas = config.nats.replicas;
  // Retried while JetStream forms; a server without JetStream clustering under SWITCHBOARD_NATS_REPLICAS > 1 is a wrong
  // setting, refused at once (exit 2) instead of retried for STARTUP_RETRY_MS.
  const ready = <T>(step: () => Promise<T>, what: string): Promise<T> => untilJetStreamReady(() => step().catch((err: unknown) => {
    if (!isReplicasWithoutCluster(err)) throw err;
    throw Object.assign(new StartError(`SWITCHBOARD_NATS_REPLICAS is ${replicas} but the NATS server's JetStream is not clustered (replicas > 1 need a JetStream cluster of at least that many servers): set 1, or run a JetStream cluster`, 2, { cause: err }), { permanent: true });
  }), what, log);

  const nc = await connectNats(config, { log, clock });
  // Leases and membership on a connection of their own (issue 13): on a node saturated with messages, a lease
  // renewal's answer would otherwise wait behind thousands of deliveries read from the same socket, come back after
  // the local deadline, and the partition would be given up (seen as multi-second p99 under max rate).
  const control = await connectNats(config, { log, clock, role: 'control' });
  let gateway: Gateway | undefined;
  /** The data connection is lost: nothing can be stored, so accepts answer 503 at once instead of after the 5 s publish timeout. */
  let natsDown = false;
  /**
   * The node held its share once (start-up). Later partition moves (a node joining, leaving or lost) do not make it
   * unready: its accepts go to JetStream whoever owns the partition, and a load balancer must not pull every healthy
   * node out while one restarts (an operator's review saw 0.3-1.8 s of 503s on the nodes that stayed).
   */
  let settledOnce = false;
  for (const [conn, name] of [[nc, 'data'], [control, 'control']] as const) {
    void (async () => {
      for await (const s of conn.status()) {
        // A lost or failing connection is worth a warning; pings (every few seconds) and reconnect attempts are not
        // worth a line at info (an operator's review counted ~35k a day per node).
        log[natsStatusLevel(s.type)]({ nats: s.type, connection: name }, 'nats connection status');
        if (name === 'data' && (s.type === 'disconnect' || s.type === 'reconnect')) {
          natsDown = s.type === 'disconnect';
          metrics.storeDurable.set(natsDown ? 0 : 1);
        }
        // Owners that took partitions while we were cut off never heard of our sessions: tell them again, now and
        // once more when every lease lost in the outage has lapsed and been won again (a CI run once saw an owner
        // without a connected session after an outage; the path was not found, the second resend covers it).
        // Idempotent at the owner.
        if (s.type === 'reconnect' && name === 'data') {
          log.info({ sessions: gateway?.resendSessions() ?? 0 }, 'sessions resent after reconnecting');
          const again = clock.setTimeout(() => log.info({ sessions: gateway?.resendSessions() ?? 0 }, 'sessions resent once leases settled'), RESEND_AFTER_RECONNECT_MS);
          (again as { unref?: () => void }).unref?.();
        }
      }
    })().catch(() => undefined);
  }
  const dropped = (err: unknown, subject: string): void => log.warn({ err: String(err), subject }, 'bus message dropped');
  const natsBus = new NatsBus(nc, dropped);
  const subjects = new Subjects(config.subjectPrefix, P);
  // SWITCHBOARD_DEDUPE_WINDOW_MS is the ingress stream's duplicate window here (it was left at JetStream's 2 min): one
  // stream for the cluster, so the node that starts last sets it for all; give every node the same value.
  const jetStream = await ready(() => JetStreamIngress.open(nc, { prefix: config.subjectPrefix, partitions: P, replicas, duplicateWindowMs: config.dedupeWindowMs }), 'ingress stream');
  // Accepts are made durable by JetStream here: the gauge follows the data connection (see the status loop below),
  // not an embedded store's health (it read 0 on every healthy cluster node before).
  metrics.storeDurable.set(natsDown ? 0 : 1);
  const ingress = new AcceptTracker(jetStream);
  // Token removals: the owner hears of it on the bus, chat servers on NATS (section 3, token_removed).
  const onTokenRemoved = tokenRemovalListener({ bus: natsBus, subjects, log, publishEvent: natsEventPublisher(nc, subjects) });
  const devicesKv = await ready(() => createConcurrently(() => new Kvm(nc).create(`${prefix}_devices`, { history: 1, replicas })), 'devices bucket');
  const registry = new KvDeviceRegistry(devicesKv, () => clock.now(), onTokenRemoved);
  const senderConfig = loadSenderConfig(config);
  if (routes) logVendorsOn(senderConfig, log);
  const pushes = new PushPool({ config: senderConfig, log, threads: config.senderThreads, maxAttempts: config.pushMaxAttempts, clock, metrics });
  const policies = new KvPolicyStore(await ready(() => createConcurrently(() => new Kvm(nc).create(`${prefix}_policies`, { history: 1, replicas })), 'policies bucket'));
  const readsKv = await ready(() => createConcurrently(() => new Kvm(nc).create(`${prefix}_reads`, { history: READS_HISTORY, replicas })), 'reads bucket');
  // Section 3's decision history across a graceful partition handoff (cluster/decision-handoff.ts); bucket max_age a week.
  const decisions = new KvDecisionHandoff(await ready(() => createConcurrently(() => new Kvm(nc).create(`${prefix}_decisions`, { history: 1, replicas, ttl: DECISION_HANDOFF_MAX_AGE_MS })), 'decisions bucket'));
  const held = await ready(() => JetStreamHeldStore.open(nc, readsKv, { prefix, partitions: P, holdMax: config.holdMax, replicas }), 'held stream');
  const membership = new Membership({ nc: control, prefix, replicas, nodeId: config.nodeId, clock, log, roles: config.roles, partitions: P });
  // Every node answers the dashboard's cluster-wide metrics gather, whatever its roles.
  const metricsExchange = new MetricsExchange({ nc, subject: subjects.dashboardMetrics, metrics, nodeId: config.nodeId, liveNodes: () => membership.liveNodes() });
  metricsExchange.start();

  const keeper = new LeaseKeeper({ nc: control, bucket: LeaseKeeper.bucketName(prefix), replicas, nodeId: config.nodeId, partitions: P, membership, clock, log });
  const fence = ownerFenceOf(keeper, P);
  held.fenceReads((user) => fence.mayAct(user));
  /** Decision histories not stored (refused, or unanswered within the wait): counted as the embedded decision log's failures are. */
  const countDecisionSaveFailures = (failed: number, when: string): void => {
    if (failed === 0) return;
    metrics.storeWriteFailures.inc({ store: 'decisions', cut: 'false' }, failed);
    log.warn({ users: failed, when }, 'decision histories not stored in the decisions bucket');
  };
  // Section 3's decision history outlives a crash of the owner: written behind (cluster/decision-write-behind.ts), each
  // packed decision marking its user. With SWITCHBOARD_DECISION_SAVE_MS=0 only a graceful handoff saves it.
  let writeBehind: DecisionWriteBehind | undefined;
  const history = new DecisionHistory(config.decisionHistoryBytes, DECISIONS_PER_USER, config.decisionSaveMs > 0 ? (user) => writeBehind!.touched(user, !history.saved(user)) : undefined);
  const router = new UserDirectory({
    nodeId: config.nodeId, bus: new FencedBus(natsBus, fence, P), subjects, registry, policies, pushes, clock, metrics, log,
    ackTimeoutMs: config.ackTimeoutMs, presenceTtlMs: config.presenceTtlMs, pushDelayMs: config.pushDelayMs, canPush: canPushWith(senderConfig),
    passivateAfterMs: config.passivateAfterMs, history,
    held, holdTtlMs: config.holdTtlSeconds * 1000, holdMax: config.holdMax, maxInflight: config.maxInflight,
    done: (id) => ingress.done(id),
    fence,
    // Written behind, the bucket holds the latest tenure's value that routed for the user, whatever its epoch (a crashed
    // one's too). Saved only at handoffs, only a tenure of this run of graceful handoffs (cluster/decision-handoff.ts).
    // No lease, nothing to merge into.
    loadDecisions: (user) => {
      const held = fence.fence(partitionOf(user, P));
      if (!held) return Promise.resolve([]);
      return decisions.load(user, { since: config.decisionSaveMs > 0 ? 0 : (held.since ?? held.epoch), before: held.epoch });
    },
    onRouted: (e) => {
      logDecision(log, e);
      nc.publish(subjects.routedEvents, packr.pack(e));
    },
  });
  if (config.decisionSaveMs > 0) {
    writeBehind = new DecisionWriteBehind({
      intervalMs: config.decisionSaveMs, clock, log,
      save: async (users) => {
        await router.mergePreviousOf(users); // a save must not replace the previous owner's decisions with ours alone
        const byEpoch = new Map<number, [string, string[]][]>();
        for (const user of users) {
          // Read when the put is sent: a partition that moved or was lost is its next owner's to write.
          const lease = fence.fence(partitionOf(user, P));
          const packed = lease ? history.packedFor(user) : [];
          if (packed.length === 0) continue;
          history.markSaved(user);
          const list = byEpoch.get(lease!.epoch);
          if (list) list.push([user, packed]);
          else byEpoch.set(lease!.epoch, [[user, packed]]);
        }
        const failed = (await Promise.all([...byEpoch].map(([epoch, list]) => decisions.save(list, epoch)))).reduce((a, n) => a + n, 0);
        countDecisionSaveFailures(failed, 'written behind');
      },
    });
  }
  keeper.host(new PartitionHost({
    nc, bus: natsBus, subjects, ingress, directory: router, liveGateways: () => membership.liveGateways(), metrics, log,
    drainTimeoutMs: config.shutdownTimeoutMs, ackTimeoutMs: config.ackTimeoutMs, reads: held,
    saveDecisions: async (p, match) => {
      await router.mergePreviousDecisions(match);
      // Stamped with this tenure's epoch, read while the lease is still held (the keeper renews it through a handoff).
      const held = fence.fence(p);
      if (held) countDecisionSaveFailures(await decisions.save(router.history.packedOf(match), held.epoch), 'handed off');
    },
  }));

  // A crashed gateway closes no session: its sessions here are closed once it is gone (cluster/membership.ts), so a
  // PC on it stops counting as active and a phone on it as online, and what waits for their acks falls back now.
  // Two nodes with different SWITCHBOARD_PARTITIONS that start together both pass membership's check at start; the
  // later one finds out from the other's beat and is refused as it would have been at start (exit 2).
  let refuse!: (err: StartError) => void;
  const refused = new Promise<StartError>((resolve) => (refuse = resolve));
  membership.on('partitionsMismatch', (err) => {
    log.error({ theirs: err.theirs, node: err.node, partitions: err.partitions }, `${err.message}; stopping (exit 2)`);
    refuse(new StartError(err.message, 2, { cause: err }));
  });
  membership.on('gatewayGone', ({ node, before }) => {
    const closed = router.dropSessionsOf(node, before);
    if (closed > 0) log.warn({ gateway: node, sessions: closed, replaced: before !== Infinity }, 'sessions of a gateway that is gone closed');
  });
  // After a pause past the dead-after time, the others may have closed this gateway's sessions: resend them.
  membership.on('resumed', () => log.info({ sessions: gateway?.resendSessions() ?? 0 }, 'sessions resent after a pause'));

  let sendListener: SendListener | undefined;
  let port = 0;
  let stoppingNow = false;
  /** SIGTERM came: `/readyz` says `stopping`, while accepts go on through SWITCHBOARD_SHUTDOWN_DELAY_MS (`stoppingNow` after it). */
  let stopAnnounced = false;
  try {
    await ready(() => membership.start(), 'membership bucket');
  } catch (e) {
    // A second process under one node id, or one whose partition count differs from the live nodes', is refused
    // (exit 2), not retried as if JetStream were not ready.
    if (e instanceof NodeIdInUseError || e instanceof PartitionsMismatchError) throw new StartError(e.message, 2, { cause: e });
    throw e;
  }
  // A gateway-only node takes no lease, yet its dashboard shows who owns each partition: it only watches them.
  await ready(() => (routes ? keeper.start() : keeper.follow()), 'leases bucket');
  // Stale tokens (issue 9): one sweeper at a time, the owner of partition 0 (a second one is harmless: compare-and-set).
  const stopSweep = routes
    ? startTokenSweep({ registry, clock, log, maxAgeDays: config.tokenMaxAgeDays, shouldRun: () => keeper.isValid(0) })
    : async () => {};
  // A router-only node still answers /healthz, /readyz and /metrics on its port (its routing and push metrics are
  // only there); a gateway serves them on its own listener beside the API.
  let operator: OperatorServer | undefined;
  const isReady = (): boolean => !stoppingNow && !natsDown && (!routes || (settledOnce ||= keeper.settled()));
  if (config.roles.includes('gateway')) {
    // A gateway's owner messages (acks, mostly) of one event-loop turn share one NATS write (bus/turn-batched-bus.ts).
    const gatewayBus = new TurnBatchedBus(natsBus, dropped);
    gateway = createGateway({
      config: gatewayConfigOf(config), nodeId: config.nodeId, bus: gatewayBus, subjects, ingress, registry, policies, metrics, log, clock,
      registration: registrationRules(config, senderConfig), jwtSecret: config.jwtSecret!, apiKey: config.apiKey!, isReady,
      cluster: new LeaseOwnershipView(membership, keeper, metricsExchange),
      events: natsEventSource(nc, subjects, log),
    });
    port = await listenOn(gateway, config.host, config.port);
    sendListener = new SendListener({
      nc, subject: subjects.send, batchSubject: subjects.sendBatch, accept: (m) => ingress.accept(m), acceptMany: (msgs) => ingress.acceptMany(msgs), now: () => clock.now(),
      onAccepted: (source) => metrics.messagesAccepted.inc({ source }),
      onDuplicate: () => metrics.messagesDuplicate.inc(),
      onError: (err) => log.warn({ err: String(err) }, 'switchboard.send request failed'),
    });
  } else {
    operator = createOperatorServer({ metrics, log, isReady, isStopping: () => stopAnnounced || stoppingNow });
    port = await listenOn(operator, config.host, config.port);
  }
  log.info({ host: config.host, port, nats: config.natsServers, partitions: P }, 'switchboard listening');
  const summary = new RoutingSummary(metrics, log, clock, config.summaryIntervalMs);
  summary.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      stopAnnounced = true; // a router-only node's /readyz says `stopping` from now on
      await announceStop(gateway, config.shutdownDelayMs, clock, log);
      stoppingNow = true; // and now accepts end (isReady)
      // The partitions' handoffs drain within SWITCHBOARD_SHUTDOWN_TIMEOUT_MS; vendor answers get what is left of it.
      const deadline = clock.now() + config.shutdownTimeoutMs;
      log.info('stopping: handing partitions off');
      gateway?.stopAccepting();
      jetStream.stopRetrying(); // an accept JetStream leaves unanswered gets its 504 after one publish timeout, no more
      await sendListener?.stop();
      await ingress.settled();
      await writeBehind?.stop(); // the handoffs below save every history as it stands
      // Hand every partition off (stop consuming, finish in-flight, release) while sessions are still up.
      if (routes) await keeper.stop();
      else {
        keeper.abandon(); // only watching
        await membership.leave();
      }
      const closed = await gateway?.closeSessions(1001);
      if (closed !== undefined) log.info({ sessions: closed, code: 1001 }, 'sessions closed');
      router.stop();
      await held.close(); // what marks still wait (handoffs put their own)
      await stopSweep();
      await pushes.close(Math.max(0, deadline - clock.now()));
      await jetStream.close();
      await gateway?.close();
      await operator?.close();
      metricsExchange.stop();
      await natsBus.close();
      await nc.drain();
      await control.drain();
      await summary.stop(); // the last interval's summary, drain included
      log.info('stopped');
    })());

  return { nodeId: config.nodeId, port, router, ingress, metrics, apiKey: config.apiKey!, jwtSecret: config.jwtSecret!, stop, refused };
}
